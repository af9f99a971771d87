"""``perfmode sweep NAME --show`` and ``evaluate --checkpoint sweep:NAME``: a study as rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfmode.base.home import Home
from perfmode.checkpoint.folders import latest_checkpoint
from perfmode.errors import PerfmodeError, UsageError
from perfmode.sweep.child import steps_of
from perfmode.sweep.storage import Where, no_study, open_storage
from perfmode.sweep.trials import on_this_machine


def load_study(w: Where, name: str) -> Any:
    """An existing study; one line when there is none of that name (nothing is created)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(w, create=False)
    except PerfmodeError as e:
        if "no sweep" in str(e):
            raise no_study(w, name) from None
        raise
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise no_study(w, name) from None


def summary(study: Any, w: Where) -> dict[str, Any]:
    rows = [_row(t) for t in study.get_trials(deepcopy=False)]
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    best = max(done, key=lambda r: r["value"]) if done else None
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    # The best so far after each finished trial: the page draws it as a line.
    best_so_far, top = [], None
    for r in sorted(done, key=lambda r: r["number"]):
        top = r["value"] if top is None else max(top, r["value"])
        best_so_far.append({"number": r["number"], "best": top})
    return {
        "sweep": study.study_name,
        "storage": w.label,
        "direction": "maximize",
        "objective": "validation total return",
        "counts": counts,
        "best": best,
        "best_so_far": best_so_far,
        "trials": rows,
    }


def _live_steps(a: dict[str, Any]) -> int | None:
    """A running trial's steps so far, from its run's status.json when it runs on this
    machine (a trial records its steps only with its result)."""
    home, run = a.get("home"), a.get("run")
    if not on_this_machine(a) or not isinstance(home, str) or not run:
        return None
    try:
        return steps_of(Home(Path(home)), str(run))
    except (PerfmodeError, OSError, ValueError):  # a run name or home it cannot be
        return None


def _row(t: Any) -> dict[str, Any]:
    a = t.user_attrs
    last = max(t.intermediate_values) if t.intermediate_values else None
    running = t.state.name == "RUNNING"
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "value": t.value if t.state.name == "COMPLETE" else None,
        "last_report": None
        if last is None
        else {"report": last, "value": t.intermediate_values[last]},
        "params": dict(t.params),
        "steps": _live_steps(a) if running else a.get("steps"),
        "run": a.get("run"),
        "host": a.get("host"),
        "home": a.get("home"),
        "error": a.get("error"),
        "retries": a.get("retries", 0),
        "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
        "finished": t.datetime_complete.isoformat(timespec="seconds")
        if t.datetime_complete
        else None,
    }


def lines(s: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(s["counts"].items())) or "no trials"
    out = [f"Sweep {s['sweep']} in {s['storage']}: {counts}; objective: {s['objective']}"]
    homes = {r["number"]: _cut(r["home"] or "-", HOME_WIDTH) for r in s["trials"]}
    hw = max([len("home"), *(len(h) for h in homes.values())])
    head = (
        f"{'#':>4}  {'state':<9} {'value':>9}  {'steps':>9}  {'machine':<16} {'home':<{hw}}  params"
    )
    out.append(head)
    for r in s["trials"]:
        value = f"{r['value']:.2%}" if r["value"] is not None else "-"
        steps = f"{r['steps']:,}" if isinstance(r["steps"], int) else "-"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items())
        line = (
            f"{r['number']:>4}  {r['state']:<9} {value:>9}  {steps:>9}  "
            f"{(r['host'] or '-'):<16} {homes[r['number']]:<{hw}}  {params}"
        )
        if r["error"] and r["state"] == "fail":
            line += f"  ({r['error']})"
        out.append(line)
    b = s["best"]
    if b is None:
        out.append("Best: none yet (no trial has finished)")
    else:
        out.append(
            f"Best: trial {b['number']} ({b['run']} on {b['host']}), validation return "
            f"{b['value']:.2%}; evaluate it on the test part: perfmode evaluate --checkpoint "
            f"sweep:{s['sweep']}"
        )
    return out


HOME_WIDTH = 32
"""The home column's widest: a long path keeps its end, where homes differ."""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def best_checkpoint(home: Home, w: Where, name: str) -> Path:
    """The final checkpoint of the study's best trial (it must have run in this home)."""
    s = summary(load_study(w, name), w)
    best = s["best"]
    if best is None:
        raise UsageError(
            f"sweep {name!r} has no finished trial yet; see `perfmode sweep {name} --show`"
        )
    if best["home"] != str(home.root):
        raise UsageError(
            f"the best trial of sweep {name!r} ({best['run']}) ran in {best['home']} on "
            f"{best['host']}; evaluate it there (or pass --home that folder)"
        )
    ckpt = latest_checkpoint(home.checkpoints_dir(best["run"]))
    if ckpt is None:
        raise PerfmodeError(f"{best['run']}: no checkpoint in {home.checkpoints_dir(best['run'])}")
    return ckpt.path
