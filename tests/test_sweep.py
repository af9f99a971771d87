"""Sweeps for real: trainer processes, a shared journal, kill -9, PostgreSQL stopped mid-trial.

Every trial is a real ``perfmode train`` child of a real ``perfmode sweep`` process.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch

from perfmode.base.home import Home
from perfmode.checkpoint.folders import latest_checkpoint
from perfmode.config.schema import load_config
from perfmode.settings.store import Mode, SettingsStore
from perfmode.sweep.storage import PATIENCE_ENV
from tests.conftest import WAIT_S, run_perfmode, wait_for
from tests.sweepkit import journal, output, postgres, start_sweep, sweep_config, trials_of
from tests.trainkit import metrics_rows, read_status

__all__ = ["postgres"]  # the fixture


def _performance(home: Home) -> None:
    SettingsStore(home.settings).set_mode(Mode.PERFORMANCE, "test")


def _finish(proc, timeout: float = WAIT_S) -> str:
    proc.wait(timeout=timeout)
    text = output(proc)
    assert proc.returncode == 0, text
    return text


def _finish_all(*procs) -> list[str]:
    """Every sweep waited for, even when one failed (none outlives the test)."""
    try:
        return [_finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=WAIT_S)


def test_two_sweeps_share_the_journal_and_a_trial_trains_as_perfmode_train_does(
    tmp_path: Path, home: Home
) -> None:
    _performance(home)
    cfg = sweep_config(tmp_path / "sweep.yaml")
    a = start_sweep(home, "j", cfg, "--trials", "3", "--jobs", "1")
    b = start_sweep(home, "j", cfg, "--trials", "3", "--jobs", "1")
    _finish_all(a, b)
    trials = trials_of(journal(home, "j"), "j")
    done = [t for t in trials if t.state.name == "COMPLETE"]
    # Counted across both processes: 3, or 4 when both asked at the same instant.
    assert 3 <= len(done) <= 4 and len(done) == len(trials), [t.state for t in trials]
    runs = {t.user_attrs["run"] for t in done}
    assert runs == {f"sweep-j-{t.number}" for t in done}
    assert {t.user_attrs["sweep_pid"] for t in done} <= {a.pid, b.pid}
    for t in done:
        assert t.user_attrs["host"] == os.uname().nodename and t.user_attrs["home"] == str(
            home.root
        )
        assert t.user_attrs["steps"] == 512 and sorted(t.intermediate_values) == [1, 2]
        assert t.value == t.intermediate_values[2]  # the final score is the last report
        # Its storage cost counts every call it made: the count and the ask before it, who
        # runs it, its scores, the pruner's reads and its result.
        cost = json.loads((home.run_dir(t.user_attrs["run"]) / "trial_cost.json").read_text())
        assert cost["trial"] == t.number and 0 < cost["storage_s"] < cost["wall_s"]
        assert cost["storage_calls"] >= 14

    shown = json.loads(
        run_perfmode("sweep", "j", "--show", "--json", "--home", str(home.root)).stdout
    )
    best = max(done, key=lambda t: t.value)
    assert (
        shown["best"]["number"] == best.number and shown["best"]["run"] == f"sweep-j-{best.number}"
    )
    assert [r["state"] for r in shown["trials"]] == ["complete"] * len(done)

    # The trial's own config, trained by `perfmode train`, gives the very same weights; and
    # so does it with no validation scores at all: scoring changes nothing that is learned.
    trial = home.run_dir(f"sweep-j-{best.number}")
    again = run_perfmode(
        "train", "--run", "again", "--config", str(trial / "trial.yaml"), "--home", str(home.root)
    )
    assert again.returncode == 0, again.stderr
    plain = tmp_path / "plain.yaml"
    text = (trial / "trial.yaml").read_text()
    plain.write_text(text.replace("validate_every: 256", "validate_every: 0"))
    assert load_config(plain).training.validate_every == 0
    quiet = run_perfmode(
        "train", "--run", "plain", "--config", str(plain), "--home", str(home.root)
    )
    assert quiet.returncode == 0, quiet.stderr
    ours = latest_checkpoint(trial / "checkpoints")
    for other in ("again", "plain"):
        theirs = latest_checkpoint(home.checkpoints_dir(other))
        assert ours is not None and theirs is not None and theirs.timesteps == ours.timesteps == 512
        assert ours.state is not None and theirs.state is not None
        w1, w2 = ours.state.policy, theirs.state.policy
        assert w1.keys() == w2.keys() and w1
        assert all(torch.equal(w1[k], w2[k]) for k in w1), other

    # evaluate --checkpoint sweep:NAME: the best trial's final checkpoint on the test part.
    ev = run_perfmode("evaluate", "--checkpoint", "sweep:j", "--json", "--home", str(home.root))
    assert ev.returncode == 0, ev.stderr
    assert ev.stdout and json.loads(ev.stdout)["policy"]["name"] == f"checkpoint {ours.path}"


def test_kill_9_of_a_trainer_then_of_the_sweep_loses_nothing(tmp_path: Path, home: Home) -> None:
    _performance(home)
    cfg = sweep_config(
        tmp_path / "sweep.yaml",
        sweep={"timesteps_per_trial": 2048, "reports": 2},
        training={"checkpoint_freq": 256},
    )
    sweep = start_sweep(home, "k", cfg, "--trials", "1", "--jobs", "1")
    run = "sweep-k-0"
    ckpts = home.checkpoints_dir(run)
    wait_for("a first checkpoint", lambda: ckpts.is_dir() and latest_checkpoint(ckpts), proc=sweep)
    os.kill(read_status(home, run)["pid"], signal.SIGKILL)
    # The sweep marks the trial failed and runs the same values again in the same folder.
    wait_for(
        "the retry to resume",
        lambda: "Resuming run 'sweep-k-0'" in (home.log_file(run).read_text()),
        proc=sweep,
    )
    resumed_at = latest_checkpoint(ckpts).timesteps
    wait_for(
        "the retry's next checkpoint",
        lambda: latest_checkpoint(ckpts).timesteps > resumed_at,
        proc=sweep,
    )
    trainer = read_status(home, run)["pid"]
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=30)
    # Its trainer hears of it (SIGTERM) and stops at a safe point, saving.
    wait_for("the orphaned trainer to stop", lambda: not _alive(trainer), timeout=WAIT_S)
    assert read_status(home, run)["state"] == "stopped"

    again = start_sweep(home, "k", cfg, "--trials", "1", "--jobs", "1")
    text = _finish(again)
    assert "its sweep process ended without finishing it" in text
    trials = trials_of(journal(home, "k"), "k")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert {t.user_attrs["run"] for t in trials} == {run}
    assert trials[0].params == trials[1].params == trials[2].params
    assert trials[2].user_attrs["steps"] == 2048
    assert home.log_file(run).read_text().count("Resuming run 'sweep-k-0'") == 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _paused_trial(home: Home) -> str | None:
    """The run of a trial of ``home`` whose trainer waits in paused."""
    for status in home.runs_dir.glob("sweep-*/status.json"):
        if read_status(home, status.parent.name).get("state") == "paused":
            return status.parent.name
    return None


def _shown_running(home: Home, run: str) -> bool:
    from perfmode.web.sweeps import sweeps_state

    return any(
        t["run"] == run and t["state"] == "running"
        for s in sweeps_state(home)["sweeps"]
        for t in s.get("trials", [])
    )


def test_two_homes_one_postgresql_study(tmp_path: Path, postgres) -> None:
    quiet, perf = Home(tmp_path / "quiet"), Home(tmp_path / "perf")
    for h in (quiet, perf):
        h.root.mkdir()
        # Each home's first trial waits in paused until the other's has started too: one
        # trial per home, whichever sweep starts first and however fast it trains.
        SettingsStore(h.settings).set_mode(Mode.PAUSED, "test")
    cfg = sweep_config(tmp_path / "sweep.yaml")
    args = ("--trials", "2", "--jobs", "1", "--storage")
    # The database trusts 127.0.0.1: a password is accepted, and must be written nowhere.
    secret = postgres.url.replace("@", ":s3cret@", 1)
    a = start_sweep(quiet, "pg", cfg, *args, postgres.url)
    b = start_sweep(perf, "pg", cfg, *args, secret)
    try:
        runs = {
            h: wait_for(f"a trial of {h.root.name}", lambda h=h: _paused_trial(h), proc=p)
            for h, p in ((quiet, a), (perf, b))
        }
        # While a trial runs, the home's page sees it within a refresh of the snapshot.
        for h in (quiet, perf):
            wait_for(
                f"{h.root.name}'s page to show its trial",
                lambda h=h: _shown_running(h, runs[h]),
                timeout=60,  # the snapshot is refreshed every 10 s
            )
    finally:
        SettingsStore(quiet.settings).set_mode(Mode.QUIET, "test")
        _performance(perf)
        _finish_all(a, b)
    import optuna

    trials = optuna.load_study(study_name="pg", storage=postgres.driver_url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert {t.user_attrs["home"]: t.user_attrs["run"] for t in trials} == {
        str(h.root): run for h, run in runs.items()
    }
    # Each home's trial trained in that home's own mode, from its first update to its last.
    for h, mode in ((quiet, "quiet"), (perf, "performance")):
        rows = [r for r in metrics_rows(h, runs[h]) if r["mode"] != "paused"]
        assert rows and {r["mode"] for r in rows} == {mode}, (h.root.name, rows)
        assert read_status(h, runs[h])["applied_mode"] == mode
    shown = run_perfmode(
        "sweep", "pg", "--show", "--storage", postgres.url, "--home", str(quiet.root)
    )
    assert shown.returncode == 0 and "Best: trial" in shown.stdout
    assert postgres.url.split("@")[1] in shown.stdout.splitlines()[0]
    # The page of either home shows the whole study (both homes' trials) from the snapshot
    # its sweep wrote when it ended, without the password: its own trial complete, the
    # other's as it was then (the sweep that ended first saw it still running).
    from perfmode.web.sweeps import sweeps_state

    for h in (quiet, perf):
        (pg,) = sweeps_state(h)["sweeps"]
        assert pg["as_of"] and sum(pg["counts"].values()) == 2, pg
        states = {t["home"]: t["state"] for t in pg["trials"]}
        assert states.keys() == {str(quiet.root), str(perf.root)}, pg
        assert states[str(h.root)] == "complete" and set(states.values()) <= {"complete", "running"}
        assert pg["best"] is not None
        assert "s3cret" not in (h.root / "sweeps" / "pg.study.json").read_text()
    assert "***" in sweeps_state(perf)["sweeps"][0]["storage"]


def test_a_database_that_goes_away_mid_trial_does_not_stop_training(
    tmp_path: Path, home: Home, postgres
) -> None:
    _performance(home)
    cfg = sweep_config(tmp_path / "sweep.yaml", sweep={"timesteps_per_trial": 1024, "reports": 4})
    sweep = start_sweep(
        home, "down", cfg, "--trials", "1", "--jobs", "1", "--storage", postgres.url
    )
    run = "sweep-down-0"
    wait_for(
        "the first score",
        lambda: (home.run_dir(run) / "validation.json").exists(),
        proc=sweep,
    )
    postgres.stop()
    try:
        wait_for(
            "the sweep to notice", lambda: "sweep storage: cannot" in output(sweep), proc=sweep
        )
        wait_for(
            "the trial to finish",
            lambda: read_status(home, run).get("state") == "finished",
            proc=sweep,
        )
        assert sweep.poll() is None  # waiting to record the result, not failed
    finally:
        postgres.start()
    _finish_all(sweep)
    import optuna

    (trial,) = optuna.load_study(study_name="down", storage=postgres.driver_url).trials
    assert trial.state.name == "COMPLETE" and sorted(trial.intermediate_values) == [1, 2, 3, 4]
    assert latest_checkpoint(home.checkpoints_dir(run)).timesteps == 1024


def test_a_result_the_database_never_takes_is_kept_for_the_next_run(
    tmp_path: Path, home: Home, postgres
) -> None:
    # The trainer waits in paused until the database is down, so every score and the result
    # meet a storage that is gone; a patience of 1 s stands in for the 10 minutes.
    SettingsStore(home.settings).set_mode(Mode.PAUSED, "test")
    cfg = sweep_config(tmp_path / "sweep.yaml")
    args = ("--trials", "1", "--jobs", "1", "--storage", postgres.url)
    sweep = start_sweep(home, "gone", cfg, *args, env={PATIENCE_ENV: "1"})
    run = "sweep-gone-0"
    try:
        wait_for(
            "the trial's trainer to wait in paused",
            lambda: read_status(home, run).get("state") == "paused",
            proc=sweep,
        )
        postgres.stop()
        try:
            _performance(home)
            sweep.wait(timeout=WAIT_S)
        finally:
            postgres.start()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=WAIT_S)
    text = output(sweep)
    assert sweep.returncode == 1, text
    said = [line for line in text.splitlines() if line.startswith("Error: ")]
    assert said == [
        f"Error: could not record {run} in {postgres.url}; their run folders and checkpoints "
        "are kept: run the same command again once the storage is back"
    ], text
    assert read_status(home, run)["state"] == "finished"
    assert latest_checkpoint(home.checkpoints_dir(run)).timesteps == 512

    # The same command, with the database back, records what the folder holds.
    _finish_all(start_sweep(home, "gone", cfg, *args))
    import optuna

    trials = optuna.load_study(study_name="gone", storage=postgres.driver_url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert {t.user_attrs["run"] for t in trials} == {run}
    assert sorted(trials[1].intermediate_values) == [1, 2] and trials[1].value is not None
