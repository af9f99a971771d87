"""Nothing a config file holds can exhaust the machine: one line, exit 2, at once.

Each case reproduces a failure found by attacking the landed project: an alias bomb took
86 s and 5.7 GB before a MemoryError, nesting 20,000 deep was a RecursionError traceback, a
50 MB list under an unknown key took 454 s and 6.7 GB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from perfmode.config.yamlfile import MAX_BYTES
from tests.hostile_yaml import alias_bomb, merge_bomb

HOSTILE: dict[str, tuple[Callable[[], str | bytes], str]] = {
    "alias bomb under env.window": (alias_bomb, "expands to more than"),
    "merge-key bomb": (merge_bomb, "expands to more than"),
    "nested 20,000 deep": (
        lambda: "env:\n  window: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "nests more than",
    ),
    "50 MB list under an unknown key": (
        lambda: "env:\n  junk:\n" + "  - 1234567\n" * 4_400_000,
        "larger than",
    ),
    "a list just under the size limit": (
        lambda: "env:\n  junk:\n" + "  - 1\n" * (MAX_BYTES // 6 - 10),
        "holds more than",
    ),
    "a 5,000-digit number": (
        lambda: "env:\n  window: " + "9" * 5000 + "\n",
        "line 2: cannot read '999",
    ),
    "a hex number of 20,000 bits": (
        lambda: "env:\n  window: 0x" + "f" * 5000 + "\n",
        "env.window is <a number of about 6020 digits>",
    ),
    "a huge number where a float goes": (
        lambda: "ppo:\n  learning_rate: 0x" + "f" * 400 + "\n",
        "ppo.learning_rate is <a number of about",
    ),
    "a long string": (lambda: "env:\n  window: " + "x" * 200_000 + "\n", "env.window is 'xxx"),
    "a long unknown key": (lambda: f"env:\n  ? {'k' * 200_000}\n  : 1\n", "unknown key env.kkk"),
    "bytes that are not UTF-8": (lambda: b"env:\n  data: \xff\xfe\n", "is not UTF-8 text"),
    "a control character": (
        lambda: "env:\n  data: a\x07b\n",
        "is not valid YAML at line 2 (character #x0007 is not allowed)",
    ),
}


def _capped() -> None:
    # A regression must fail the test, not take the shared machine's memory with it
    # (reading /dev/zero grows ~230 MB/s; the alias bomb took 5.7 GB).
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def run_capped(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -c`` running the CLI, memory-capped; stdout says whether torch or pandas
    (seconds and half a second to import) were imported."""
    code = (
        "import sys\nfrom perfmode.cli import main\n"
        "try:\n    main()\nfinally:\n"
        "    print('torch imported:', 'torch' in sys.modules)\n"
        "    print('pandas imported:', 'pandas' in sys.modules)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_capped,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1, proc.stderr[:2000]
    assert fragment in proc.stderr
    assert len(proc.stderr) < 400


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX memory limits")


LOAD_EACH = """
import json, sys
from perfmode.config.schema import load_config
out = {}
for case, path in json.loads(sys.argv[1]).items():
    try:
        load_config(path)
        out[case] = "loaded without an error"
    except Exception as e:
        out[case] = f"{type(e).__name__}: {e}"[:2000]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hostile_messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What loading each hostile file says, all in one memory-capped process (one start-up)."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for i, (case, (make, _)) in enumerate(HOSTILE.items()):
        content = make()
        paths[case] = str(folder / f"case{i}.yaml")
        Path(paths[case]).write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_EACH, json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=_capped,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_config_is_refused_in_one_short_line(
    hostile_messages: dict[str, str], case: str
) -> None:
    message = hostile_messages[case]
    assert message.startswith("UsageError: "), message[:500]
    assert HOSTILE[case][1] in message
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize(
    "case", ["alias bomb under env.window", "nested 20,000 deep", "50 MB list under an unknown key"]
)
def test_train_answers_a_hostile_config_with_exit_2_before_loading_torch_or_pandas(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE[case][0]())  # type: ignore[arg-type]
    home = tmp_path / "home"
    home.mkdir()
    proc = run_capped("train", "--config", str(path), "--home", str(home))
    assert_one_line_exit_2(proc, f"Error: config file {path} ")
    assert "torch imported: False" in proc.stdout
    assert "pandas imported: False" in proc.stdout
    assert list(home.iterdir()) == []  # nothing written


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_without_reading_it() -> None:
    proc = run_capped("config", "show", "--config", "/dev/zero")
    assert_one_line_exit_2(proc, "config file /dev/zero is not a regular file; pass a YAML file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    proc = run_capped("config", "show", "--config", str(fifo))
    assert_one_line_exit_2(proc, f"config file {fifo} is not a regular file; pass a YAML file")
