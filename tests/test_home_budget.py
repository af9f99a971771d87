"""The home's budget: who of the home's runs trains, with what share, and who waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from perfmode.base.home import Home
from perfmode.cli.mode import status_lines
from perfmode.config.schema import Config
from perfmode.errors import UsageError
from perfmode.governor.budget import MIN_RUN_SHARE, Peer, decide_share, in_line
from perfmode.governor.governor import Governor
from perfmode.governor.homebudget import WAIT_AFTER_S, HomeBudget
from perfmode.governor.peers import live_peers, peer_of
from perfmode.settings.store import Mode, SettingsStore
from perfmode.status.model import TrainerStatus
from perfmode.status.report import build_status
from perfmode.training.seeds import parse_seeds, seed_runs


def _peers(n: int, cores: int = 1) -> list[Peer]:
    return [Peer(f"r{i}", 1000 + i, 100.0 + i, cores) for i in range(n)]


def test_quiet_shares_the_profiles_share_among_the_homes_runs() -> None:
    peers = _peers(3)
    shares = [
        decide_share(p.run, peers, Mode.QUIET, profile_share=0.5, free_cores=2) for p in peers
    ]
    assert all(s.state == "training" for s in shares)
    assert sum(s.cpu_share for s in shares) == pytest.approx(0.5)
    assert {round(s.cpu_share, 4) for s in shares} == {round(0.5 / 3, 4)}
    alone = decide_share("r0", peers[:1], Mode.QUIET, profile_share=0.5, free_cores=2)
    assert alone.cpu_share == 0.5 and alone.state == "training"


def test_quiet_serves_no_run_below_the_minimum_share_the_rest_wait_in_line() -> None:
    peers = _peers(8)
    shares = [
        decide_share(p.run, peers, Mode.QUIET, profile_share=0.5, free_cores=2) for p in peers
    ]
    served = round(0.5 / MIN_RUN_SHARE)
    assert [s.state for s in shares] == ["training"] * served + ["waiting"] * (8 - served)
    assert sum(s.cpu_share for s in shares) == pytest.approx(0.5)
    assert shares[-1].reason == (
        "waiting: quiet's 0.5 cores for the home serve 5 runs at 0.1 cores each; 8th in line"
    )


def test_performance_serves_one_run_per_free_core_in_start_order() -> None:
    peers = _peers(4)
    shares = [
        decide_share(p.run, peers, Mode.PERFORMANCE, profile_share=1.0, free_cores=2) for p in peers
    ]
    assert [s.state for s in shares] == ["training", "training", "waiting", "waiting"]
    assert shares[3].reason == "waiting: 2 cores free serve 2 runs; 4th in line"
    assert shares[0].reason == "performance: 1 core of the 2 cores free; 4 runs in the home"
    assert shares[0].cpu_share == 1.0
    # A run that trains with two threads takes two of the free cores.
    wide = [Peer("w", 1, 1.0, 2), *peers]
    states = [
        decide_share(p.run, wide, Mode.PERFORMANCE, profile_share=1.0, free_cores=3).state
        for p in wide
    ]
    assert states == ["training", "training", "waiting", "waiting", "waiting"]
    # The first in line trains even when other programs leave no core free.
    first = decide_share("w", wide, Mode.PERFORMANCE, profile_share=1.0, free_cores=1)
    assert first.state == "training"


def test_every_trainer_computes_the_same_line_start_time_then_name() -> None:
    a, b, c = Peer("b", 7, 50.0), Peer("a", 9, 50.0), Peer("c", 3, 10.0)
    assert [p.run for p in in_line([a, b, c])] == ["c", "a", "b"]
    assert [p.run for p in in_line([b, c, a])] == ["c", "a", "b"]


def test_paused_pauses_all_and_nobody_waits_for_a_share() -> None:
    peers = _peers(6)
    states = {
        decide_share(p.run, peers, Mode.PAUSED, profile_share=0.5, free_cores=1).state
        for p in peers
    }
    assert states == {"training"}  # the governor's pause itself stops them: all of them


def test_a_training_run_waits_only_when_the_misfit_lasts_but_a_mode_change_is_at_once() -> None:
    clock = [0.0]
    others: list[Peer] = []
    budget = HomeBudget("late", lambda: others, lambda: 1, clock=lambda: clock[0])
    assert budget.poll(Mode.PERFORMANCE, 1.0, 1) is False and not budget.share.waiting
    # An earlier run appears while one core is free: not at once (a starting trainer)...
    others.append(Peer("early", os.getppid(), budget.started - 100, 1))
    budget.poll(Mode.PERFORMANCE, 1.0, 1)
    assert not budget.share.waiting
    clock[0] += WAIT_AFTER_S + 0.1
    assert budget.poll(Mode.PERFORMANCE, 1.0, 1) is True
    assert budget.share.waiting
    # ...and it trains again at once when a core frees up.
    assert budget.poll(Mode.PERFORMANCE, 1.0, 2) is True and not budget.share.waiting
    # Quiet begins: the home drops to quiet's total at once.
    assert budget.poll(Mode.QUIET, 0.5, 2) is True
    assert budget.share.cpu_share == pytest.approx(0.25)


def _status(home: Home, run: str, **fields) -> None:
    home.make_run_dir(run)
    home.status_file(run).write_text(json.dumps({"state": "training", **fields}))


def test_a_dead_run_or_a_recycled_pid_holds_no_share(home: Home) -> None:
    me = psutil.Process()
    _status(home, "live", pid=me.pid, pid_started=me.create_time(), budget={"cores": 1})
    # A pid the system gave to another process since (its start time differs).
    _status(home, "recycled", pid=me.pid, pid_started=me.create_time() - 3600)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    started = me.create_time()
    _status(home, "dead", pid=dead.pid, pid_started=started)
    _status(home, "finished", pid=me.pid, pid_started=started, **{"state": "finished"})
    _status(home, "no-start-time", pid=me.pid)
    assert [p.run for p in live_peers(home)] == ["live"]
    # Whatever the file holds, the reader says no rather than fail.
    for junk in ({"pid": True, "pid_started": 1.0}, {"pid": 2**40}, {"pid_started": "x"}, {}):
        assert peer_of("x", TrainerStatus.from_json({"state": "training", **junk})) is None
    home.make_run_dir("junk")
    for text in ("[1]", "{", '{"state": "training", "pid": 1.5, "budget": [1]}', "\x00" * 9):
        home.status_file("junk").write_text(text)
        assert [p.run for p in live_peers(home)] == ["live"]
    # A share of cores no machine has reads as one core.
    _status(home, "junk", pid=me.pid, pid_started=started, budget={"cores": 10**400})
    assert {p.run: p.cores for p in live_peers(home)} == {"live": 1, "junk": 1}


def test_status_shows_each_runs_share_state_and_why(home: Home) -> None:
    me = psutil.Process()
    reason = "waiting: 2 cores free serve 2 runs; 3rd in line\x1b[2J"
    _status(
        home,
        "s2",
        pid=me.pid,
        pid_started=me.create_time(),
        heartbeat="2099-01-01T00:00:00+00:00",
        budget={"state": "waiting", "cpu_share": 0.0, "reason": reason},
        **{"state": "waiting"},
    )
    lines = dict(status_lines(build_status(home)))
    assert (
        lines["Run s2"] == "waiting, 0 cores: waiting: 2 cores free serve 2 runs; 3rd in line?[2J"
    )


def test_a_waiting_run_reports_the_cpu_it_gets_none_not_its_profiles(home: Home) -> None:
    SettingsStore(home.settings).set_mode(Mode.PERFORMANCE, changed_by="cli")
    # An earlier run of the home takes every core there is: this one waits.
    early = Peer("early", os.getppid(), psutil.Process().create_time() - 100, 4096)
    budget = HomeBudget("late", lambda: [early], lambda: 1)
    gov = Governor(SettingsStore(home.settings), Config(), budget=budget)
    assert gov.waiting
    status = TrainerStatus()
    gov.report(status)
    assert status.knobs.cpu_share == 0 and status.budget.cpu_share == 0
    # A core frees up: it trains with the profile's share again.
    budget._peers = lambda: []
    gov._poll_budget()
    assert not gov.waiting
    gov.report(status)
    assert status.knobs.cpu_share == 1.0


def test_status_shows_a_waiting_run_at_no_cpu_whatever_its_file_says(home: Home) -> None:
    me = psutil.Process()
    # As a trainer before this fix wrote it: the profile's share beside the waiting state.
    _status(
        home,
        "s1",
        pid=me.pid,
        pid_started=me.create_time(),
        heartbeat="2099-01-01T00:00:00+00:00",
        applied_mode="performance",
        batch_size=128,
        n_epochs=4,
        torch_threads=1,
        cpu_share=1.0,
        budget={"state": "waiting", "cpu_share": 0.0, "reason": "waiting: 1st in line"},
        **{"state": "waiting"},
    )
    applied = dict(status_lines(build_status(home)))["Applied"]
    want = "performance (batch 128, epochs 4, threads 1, cpu 0%, waiting) "
    assert applied.startswith(want), applied


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-3", [0, 1, 2, 3]), ("0,2,5", [0, 2, 5]), ("0-1, 7", [0, 1, 7])]
)
def test_seeds_are_a_range_or_a_list(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "3-1", "a", "0-", "-1", "1,1", "0-100000", "1.5"])
def test_a_bad_seeds_value_is_one_clear_line(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_seeds(text)
    assert "\n" not in str(e.value) and "--seeds" in str(e.value)


def test_seed_runs_are_named_after_the_run() -> None:
    assert seed_runs("sweep", [0, 2]) == ["sweep-s0", "sweep-s2"]
    with pytest.raises(UsageError):
        seed_runs("x" * 63, [10])
