"""The platform layer. Linux runs here, so the Windows and macOS branches are exercised by
simulation where their behaviour is pure: the system name is passed in, the OS call is
injected (a replace that raises PermissionError, a psutil process, os.kill). What the OS
itself does on Windows or macOS is not run here; README's "Windows and macOS" says which."""

from __future__ import annotations

import errno
import functools
import io
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from perfmode.base import fsutil
from perfmode.base import platform as pf
from perfmode.base.platform import files, process
from perfmode.base.platform.console import console_text, fit_console
from perfmode.errors import PerfmodeError

# -- replacing a file -------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_a_sharing_violation_that_passes_is_retried_with_growing_pauses() -> None:
    t, calls = FakeTime(), []

    def replace() -> None:
        calls.append(t.now)
        if len(calls) <= 4:
            raise PermissionError(13, "Access is denied")  # WinError 5 while a reader has it

    files.retry_sharing_violation(replace, "settings.json", sleep=t.sleep, clock=t.clock)
    assert len(calls) == 5
    assert t.sleeps == sorted(t.sleeps) and t.sleeps[0] < t.sleeps[-1]
    assert t.now < files.REPLACE_RETRY_S


def test_a_sharing_violation_that_persists_is_one_line_after_a_bounded_time() -> None:
    t, calls = FakeTime(), []

    def replace() -> None:
        calls.append(t.now)
        raise PermissionError(13, "Access is denied")

    with pytest.raises(files.ReplaceBlocked) as e:
        files.retry_sharing_violation(
            replace, r"C:\trading\settings.json", sleep=t.sleep, clock=t.clock
        )
    assert files.REPLACE_RETRY_S <= t.now <= files.REPLACE_RETRY_S + 0.2
    assert 5 <= len(calls) <= 30  # tried again and again, but not in a busy loop
    line = str(e.value)
    assert "\n" not in line and r"C:\trading\settings.json" in line and "keeps it open" in line
    # Both kinds: the CLI says the line; code that survives a failed write survives this.
    assert isinstance(e.value, PerfmodeError) and isinstance(e.value, PermissionError)


def test_other_errors_are_not_retried() -> None:
    t = FakeTime()

    def replace() -> None:
        raise FileNotFoundError(2, "gone")

    with pytest.raises(FileNotFoundError):
        files.retry_sharing_violation(replace, "x", sleep=t.sleep, clock=t.clock)
    assert t.sleeps == []


@pytest.fixture
def windows_replace(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """atomic writes take the Windows branch; os.replace refuses while ``blocked[0] > 0``."""
    blocked = [0]
    real = os.replace

    def replace(src: str, dst: str) -> None:
        if blocked[0] > 0:
            blocked[0] -= 1
            raise PermissionError(13, "Access is denied", str(dst))
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    monkeypatch.setattr(files, "REPLACE_RETRY_S", 0.3)
    monkeypatch.setattr(
        fsutil, "replace_file", functools.partial(pf.replace_file, system="windows")
    )
    return blocked


def test_an_atomic_write_gets_through_a_reader_that_lets_go(
    tmp_path: Path, windows_replace
) -> None:
    path = tmp_path / "settings.json"
    path.write_text("old")
    windows_replace[0] = 3
    fsutil.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_a_blocked_atomic_write_leaves_the_file_and_no_temp(
    tmp_path: Path, windows_replace
) -> None:
    path = tmp_path / "settings.json"
    path.write_text("old")
    windows_replace[0] = 10**6
    with pytest.raises(files.ReplaceBlocked):
        fsutil.atomic_write_bytes(path, b"new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_perfmode_set_says_the_one_line_when_the_file_stays_held(
    tmp_path: Path, windows_replace
) -> None:
    from typer.testing import CliRunner

    from perfmode.cli import app

    assert CliRunner().invoke(app, ["set", "quiet", "--home", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "settings.json").read_bytes()
    windows_replace[0] = 10**6
    result = CliRunner().invoke(app, ["set", "performance", "--home", str(tmp_path)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "settings.json: another program keeps it open" in errors[0]
    assert (tmp_path / "settings.json").read_bytes() == before


def test_replace_on_posix_is_plain_os_replace(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    pf.replace_file(tmp_path / "a", tmp_path / "b", system="linux")
    assert (tmp_path / "b").read_text() == "a" and not (tmp_path / "a").exists()


@pytest.mark.parametrize("system", ["linux", "windows"])
def test_a_file_opens_only_where_neither_it_nor_its_folder_is_a_link(
    tmp_path: Path, system: str
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "precious").write_text("keep me")
    (tmp_path / "linked").symlink_to(real)
    (real / "link").symlink_to(real / "precious")
    for folder, name in ((tmp_path / "linked", "precious"), (real, "link")):
        with pytest.raises(OSError) as refused:
            pf.open_unlinked(folder, name, os.O_WRONLY | os.O_TRUNC, system=system)
        assert refused.value.errno == errno.ELOOP, (folder, name)
    assert (real / "precious").read_text() == "keep me"
    os.close(pf.open_unlinked(real, "own", os.O_WRONLY | os.O_CREAT, 0o644, system=system))
    assert (real / "own").is_file()


# -- priority ---------------------------------------------------------------------------


class FakeProcess:
    def __init__(self, priority_class: int, fail: bool = False) -> None:
        self.priority_class, self.fail = priority_class, fail
        self.set: list[int] = []

    def nice(self, value: int | None = None) -> int:
        if self.fail:
            raise PermissionError(13, "Access is denied")
        if value is not None:
            self.set.append(value)
            self.priority_class = value
        return self.priority_class


@pytest.mark.parametrize(
    ("nice", "expected"),
    [
        (0, None),
        (-5, None),
        (1, process.BELOW_NORMAL_PRIORITY_CLASS),
        (10, process.BELOW_NORMAL_PRIORITY_CLASS),
        (14, process.BELOW_NORMAL_PRIORITY_CLASS),
        (15, process.IDLE_PRIORITY_CLASS),
        (19, process.IDLE_PRIORITY_CLASS),
    ],
)
def test_nice_maps_to_a_windows_priority_class(nice: int, expected: int | None) -> None:
    assert pf.windows_priority_class(nice) == expected
    p = FakeProcess(process.NORMAL_PRIORITY_CLASS)
    pf.lower_priority(nice, system="windows", process=p)
    assert p.set == ([] if expected is None else [expected])


def test_windows_priority_only_goes_down_and_failures_do_not_stop_training() -> None:
    idle = FakeProcess(process.IDLE_PRIORITY_CLASS)
    pf.lower_priority(10, system="windows", process=idle)  # BELOW_NORMAL would be higher
    assert idle.set == []
    pf.lower_priority(10, system="windows", process=FakeProcess(0, fail=True))


def test_posix_priority_is_lowered_in_a_real_process() -> None:
    code = (
        "import os; from perfmode.base.platform import lower_priority; "
        "before = os.nice(0); lower_priority(before + 3); lower_priority(before + 3); "
        "lower_priority(before + 1); print(os.nice(0) - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"  # a level: lowered once, never raised


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX nice values")
def test_perfmode_train_gives_way_before_it_loads_torch(tmp_path: Path) -> None:
    """A trainer's start-up is seconds of CPU (torch, SB3), again at every trial of a sweep:
    it runs at the config's priority, not only the training after it."""
    from tests.trainkit import write_config

    config = write_config(tmp_path / "tiny.yaml", training={"nice": 4})
    code = (
        "import os, sys\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            print('nice when torch loads', os.nice(0), flush=True)\n"
        "            os._exit(0)\n"
        "sys.meta_path.insert(0, Watch())\n"
        "before = os.nice(0)\n"
        "print('nice at start', before, flush=True)\n"
        "from perfmode.cli import main\n"
        f"sys.argv = ['perfmode', 'train', '--home', {str(tmp_path / 'home')!r}, "
        f"'--config', {str(config)!r}]\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    ).stdout
    lines = dict(line.rsplit(" ", 1) for line in out.splitlines() if line.startswith("nice"))
    assert "nice when torch loads" in lines, out
    assert int(lines["nice when torch loads"]) == max(int(lines["nice at start"]), 4)


# -- starting and stopping a trainer ----------------------------------------------------


def test_detached_start_flags_per_system() -> None:
    assert pf.detached_kwargs("linux") == {"start_new_session": True}
    assert pf.detached_kwargs("macos") == {"start_new_session": True}
    assert pf.detached_kwargs("windows") == {"creationflags": 0x200}  # CREATE_NEW_PROCESS_GROUP
    assert pf.own_group_kwargs("linux") == {}  # stays in the terminal's group, like a shell job
    assert pf.own_group_kwargs("windows") == {"creationflags": 0x200}


def test_the_page_starts_its_trainer_with_the_flags_of_the_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perfmode.base.home import Home
    from perfmode.web import launcher

    seen: list[dict] = []

    class Popen:
        pid = 4242

        def __init__(self, cmd: list[str], **kwargs: object) -> None:
            seen.append(kwargs)

    monkeypatch.setattr(launcher.subprocess, "Popen", Popen)
    monkeypatch.setattr(launcher, "detached_kwargs", lambda: pf.detached_kwargs("windows"))
    launcher.Launcher(Home(tmp_path)).start("default", launcher.BUILTIN_CONFIG)
    assert seen[0]["creationflags"] == 0x200 and "start_new_session" not in seen[0]


def test_a_graceful_stop_is_sigterm_on_posix_and_ctrl_break_on_windows() -> None:
    sent: list[tuple[int, int]] = []
    pf.stop_process(7, system="linux", kill=lambda pid, sig: sent.append((pid, sig)))
    pf.stop_process(7, system="windows", kill=lambda pid, sig: sent.append((pid, sig)))
    assert sent == [(7, signal.SIGTERM), (7, 1)]  # CTRL_BREAK_EVENT


class FakeChild:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def send_signal(self, sig: int) -> None:
        self.calls.append(sig)

    def terminate(self) -> None:
        self.calls.append("terminate")

    def kill(self) -> None:
        self.calls.append("kill")


def test_stopping_a_child_and_forwarding_a_stop_per_system() -> None:
    posix, windows = FakeChild(), FakeChild()
    pf.stop_child(posix, system="linux")
    pf.stop_child(windows, system="windows")
    assert posix.calls == ["terminate"] and windows.calls == [1]
    posix, windows = FakeChild(), FakeChild()
    for sig in (signal.SIGINT, signal.SIGTERM):
        pf.forward_signal(posix, sig, system="linux")
        pf.forward_signal(windows, sig, system="windows")
    assert posix.calls == [signal.SIGINT, signal.SIGTERM]
    # Windows: the console gave the child its own Ctrl-C; passing it on would be a second.
    assert windows.calls == ["terminate"]


def test_quitting_a_child_at_once_per_system() -> None:
    posix, windows = FakeChild(), FakeChild()
    pf.quit_child(posix, system="linux")
    pf.quit_child(windows, system="windows")
    # POSIX: the trainer's second Ctrl-C. Windows: a child in its own group gets no Ctrl-C.
    assert posix.calls == [signal.SIGINT] and windows.calls == ["kill"]


def test_the_signals_a_stop_listens_for() -> None:
    assert process.stop_signal_names("linux") == ["SIGINT", "SIGTERM"]
    assert process.stop_signal_names("linux", hangup=True) == ["SIGINT", "SIGTERM", "SIGHUP"]
    assert process.stop_signal_names("windows", hangup=True) == ["SIGINT", "SIGTERM", "SIGBREAK"]
    assert process.forwarded_signal_names("macos") == ["SIGINT", "SIGTERM", "SIGHUP"]
    assert pf.stop_signals(hangup=True) == (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# -- idle sources, CPU, interpreter -----------------------------------------------------


def test_idle_sources_per_system() -> None:
    from perfmode.governor.idle import SOURCES

    assert pf.idle_source_names("windows") == ("windows",)
    assert pf.idle_source_names("macos") == ("macos",)
    assert pf.idle_source_names("linux") == ("x11", "logind")
    for system in ("windows", "macos", "linux", "posix"):
        assert set(pf.idle_source_names(system)) <= set(SOURCES)


def test_system_names() -> None:
    assert [pf.system_of(n) for n in ("win32", "darwin", "linux", "freebsd14", "cygwin")] == [
        "windows",
        "macos",
        "linux",
        "posix",
        "posix",
    ]


def test_cpu_model_from_cpuinfo() -> None:
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
    assert files.cpuinfo_model(text) == "AMD EPYC 7B13"
    assert files.cpuinfo_model("processor\t: 0\n") is None


def test_a_service_runs_pythonw_beside_python_exe(tmp_path: Path) -> None:
    (tmp_path / "python.exe").touch()
    assert pf.python_without_console(str(tmp_path / "python.exe")) == str(tmp_path / "python.exe")
    (tmp_path / "pythonw.exe").touch()
    assert pf.python_without_console(str(tmp_path / "python.exe")) == str(tmp_path / "pythonw.exe")
    assert pf.python_without_console("/usr/bin/python3") == "/usr/bin/python3"


# -- the console ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cp1252", "ascii"),
    [
        ("🧵 Threads: 2 (cores)", "Threads: 2 (cores)", "Threads: 2 (cores)"),
        ("⚠️  cannot write x", "!  cannot write x", "!  cannot write x"),
        ("n_steps 512 × 8 envs", "n_steps 512 × 8 envs", "n_steps 512 x 8 envs"),
        ("18:00 → performance", "18:00 -> performance", "18:00 -> performance"),
        ("⏳ 40 / 100 steps", "40 / 100 steps", "40 / 100 steps"),
        ("Zürich ☃", "Zürich ", "Zurich "),
    ],
)
def test_symbols_fall_back_to_ascii_where_the_console_lacks_them(
    text: str, cp1252: str, ascii: str
) -> None:
    assert console_text(text, "cp1252") == cp1252
    assert console_text(text, "ascii") == ascii
    assert console_text(text, "utf-8") == text


def _stream(encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="strict", write_through=True)


def test_a_cp1252_stream_prints_every_line_after_fit_console() -> None:
    stream = _stream("cp1252")
    with pytest.raises(UnicodeEncodeError):
        stream.write("🧵 Threads\n")  # what a Windows console redirected to a file did
    fit_console(stream)
    stream.write("🧵 Threads: 2\n⏰ 18:00 → performance\n")
    assert stream.buffer.getvalue().decode("cp1252") == "Threads: 2\n18:00 -> performance\n"
    utf8 = _stream("utf-8")
    fit_console(utf8)
    assert utf8.errors == "strict"  # a console that prints the symbols keeps them
    fit_console(None)  # pythonw.exe has no console at all


def test_the_progress_bar_and_its_log_lines_print_on_a_cp1252_stream() -> None:
    from perfmode.status.progressbar import TrainProgress

    stream = _stream("cp1252")
    logger = logging.getLogger("perfmode")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with TrainProgress(1000, terminal=True, stream=stream) as bar:
            bar.update(100, "quiet")
            logging.getLogger("perfmode.train").info("🧵 Threads: 2 × 1")
            bar.update(200, "performance")
    finally:
        logger.removeHandler(handler)
    out = stream.buffer.getvalue().decode("cp1252")
    assert "Threads: 2 × 1" in out and "/ 1,000 steps" in out


@pytest.mark.parametrize("fixed", [True, False])
def test_a_process_without_a_console_survives_a_warning_to_stderr(
    tmp_path: Path, fixed: bool
) -> None:
    # pythonw.exe, as the Task Scheduler task runs it, has no stdout and no stderr; a log
    # file that cannot be written is then said on a stderr that is None.
    code = (
        "import logging, sys; sys.stdout = sys.stderr = None\n"
        "from perfmode.base.platform import streams_without_console\n"
        f"if {fixed}: streams_without_console()\n"
        "from perfmode.base.logfile import LogFile\n"
        f"LogFile({str(tmp_path)!r}).emit(logging.makeLogRecord({{'msg': 'x'}}))\n"
        "print('still running')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    # Unfixed, the process dies of an AttributeError it cannot even print (exit 1).
    assert (out.returncode == 0) is fixed
    assert out.stdout == out.stderr == b""  # the null device, not the caller's pipes


def test_main_gives_a_process_without_a_console_its_streams() -> None:
    code = (
        "import sys; sys.stdout = sys.stderr = None; sys.argv = ['perfmode', 'version']\n"
        "from perfmode.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import os; os.write(1, repr(sys.stdout.name).encode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert out.stdout.decode() == repr(os.devnull)


def test_help_on_an_ascii_console_prints_ascii_instead_of_crashing() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "perfmode", "train", "--help"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode("ascii", "replace")[-500:]
    text = out.stdout.decode("ascii")  # nothing but ASCII came out
    assert "(n_steps x n_envs)" in text


# A signal this machine has, standing in for Windows' SIGBREAK.
STAND_IN = signal.SIGUSR1


def _installed_for_stand_in(monkeypatch: pytest.MonkeyPatch, enter) -> bool:
    # Every stop point goes through the platform's on_stop_signals: a signal the platform
    # adds to its stop signals reaches each of them.
    monkeypatch.setattr(
        process, "stop_signals", lambda **_: (signal.SIGINT, signal.SIGTERM, STAND_IN)
    )
    before = signal.getsignal(STAND_IN)
    with enter():
        inside = signal.getsignal(STAND_IN)
    assert signal.getsignal(STAND_IN) == before  # put back on the way out
    return inside != before


def test_every_stop_listens_to_the_platforms_signals(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from perfmode.cli import train as train_cli
    from perfmode.schedule import daemon
    from perfmode.sweep import runner as sweep
    from perfmode.training import seeds, stop

    assert _installed_for_stand_in(monkeypatch, lambda: stop.StopRequest().installed())
    assert _installed_for_stand_in(monkeypatch, daemon.stop_on_signals)
    assert _installed_for_stand_in(monkeypatch, train_cli._stop_before_training)
    assert _installed_for_stand_in(monkeypatch, seeds.SeedRuns([])._handlers)
    assert _installed_for_stand_in(monkeypatch, lambda: sweep.stop_on_signals(threading.Event()))


def test_a_child_stopped_with_its_parent_is_wrapped_on_linux_only() -> None:
    from perfmode.base.platform import stopped_with_parent

    argv = [sys.executable, "-m", "perfmode", "train"]
    assert stopped_with_parent(argv, system="windows") == argv
    assert stopped_with_parent(argv, system="macos") == argv
    wrapped = stopped_with_parent(argv, system="linux")
    assert wrapped[0] == sys.executable and wrapped[1] == "-c"
    assert wrapped[3] == str(os.getpid()) and wrapped[4:] == argv
