"""Starting more runs from the page than the home's budget serves queues them: the machine
gets the trainers the budget serves plus one waiting in line, never one per click."""

from __future__ import annotations

import psutil

from perfmode.base.home import Home
from tests.conftest import run_perfmode, wait_for
from tests.trainkit import write_config
from tests.uikit import UiServer, kill_trainers_of, trainers_of


def _trainers(home: Home) -> list[str]:
    return sorted(run for run, _ in trainers_of(home))


def _told(home: Home, state: tuple[dict, dict]) -> str:
    """What the runs said of themselves, for a failure's message."""
    runs, launches = state
    lines = [f"{r}: {v.get('state')} {v.get('budget')}" for r, v in runs.items()]
    lines += [f"{r}: launch {v}" for r, v in launches.items()]
    for log in sorted((home.root / ".perfmode-ui").glob("*.log")):
        lines.append(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        )
    return "\n".join(lines)


def test_starts_beyond_the_budget_queue_and_start_as_room_frees(home: Home) -> None:
    write_config(
        home.root / "tiny.yaml",
        training={"total_timesteps": 10**6, "checkpoint_freq": 10**5, "poll_interval": 0.05},
    )
    assert run_perfmode("set", "performance", "--home", str(home.root)).returncode == 0
    server = UiServer(home)
    try:
        # One CPU for the server and every trainer it starts: performance serves one run.
        psutil.Process(server.proc.pid).cpu_affinity([psutil.Process().cpu_affinity()[0]])
        for run in ("r0", "r1", "r2", "r3"):
            code, body = server.post("/api/runs/start", {"run": run, "config": "tiny.yaml"})
            assert code == 200, body
        code, body = server.post("/api/runs/start", {"run": "r3", "config": "tiny.yaml"})
        assert code == 409 and "queued already" in body["error"]

        def state() -> tuple[dict, dict]:
            snap = server.request("GET", "/api/state")[1]
            runs = {r["run"]: r for r in (snap["status"] or {}).get("runs", [])}
            return runs, snap["launches"]

        def line(*states: str) -> bool:
            runs = state()[0]
            return all(
                runs.get(r, {}).get("state") == s for r, s in zip(("r0", "r1"), states, strict=True)
            )

        wait_for("r0 training, r1 waiting", lambda: line("training", "waiting"), 180)
        runs, launches = state()
        assert "2nd in line" in runs["r1"]["budget"]["reason"]
        # The rest are accepted and queued, no process of their own.
        assert launches["r2"]["queued"] and launches["r2"]["pid"] is None
        assert launches["r3"]["queued"]
        assert _trainers(home) == ["r0", "r1"]
        # A queued run is taken off the queue by its stop.
        code, body = server.post("/api/runs/stop", {"run": "r3"})
        assert code == 200 and body["pid"] is None
        # r0 ends: r1 trains, and the queue starts r2, which waits in line.
        assert server.post("/api/runs/stop", {"run": "r0"})[0] == 200
        wait_for("r1 training", lambda: state()[0].get("r1", {}).get("state") == "training", 120)
        wait_for("r2 started", lambda: not state()[1]["r2"]["queued"], 60)
        try:
            wait_for("r2 waiting", lambda: state()[0].get("r2", {}).get("state") == "waiting", 180)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_told(home, state())}") from None
        assert _trainers(home) == ["r1", "r2"]
        assert state()[1]["r3"]["queued"] is False and state()[1]["r3"]["pid"] is None
    finally:
        server.stop()
        kill_trainers_of(home)
