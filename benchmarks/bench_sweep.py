"""What `perfmode sweep` gets done, what its storage costs, and whether it finds something.

Side by side, in one run, on this machine (say what else ran: the figures print the load):
1. trials per hour in performance: `perfmode sweep --jobs 2` vs the same trials (their own
   trial.yaml) trained one after another with `perfmode train`;
2. a trial's weights vs `perfmode train` with the same sampled config and seed (equal?);
3. two homes, one quiet and one performance, sharing one PostgreSQL study for the same
   wall time: trial-steps each home trained (target: performance ≥ 1.8× quiet);
4. the storage's own cost, as a share of each trial's wall time (journal and PostgreSQL;
   target < 2%): every call a trial makes through Optuna's storage API (counting the
   study's trials before it is asked for, the ask, who runs it, its scores, the pruner's
   reads, its result), timed by the sweep at that API and written to the trial's
   runs/sweep-NAME-N/trial_cost.json once the result is recorded;
5. the best trial of a sweep on the learnable synthetic market (cycles) vs buy-and-hold and
   flat on its test part, and the same sweep on a random walk.

Run: .venv/bin/python benchmarks/bench_sweep.py [--trials 4] [--steps 4096]
       [--seconds 150] [--learn-trials 6] [--learn-steps 16384]
       [--parts throughput,homes,learn]
     .venv/bin/python benchmarks/bench_sweep.py --smoke   # every part, tiny: checks the
       script runs (a minute or two); its figures mean nothing
Needs PostgreSQL's server binaries for part 3 (apt-get install postgresql); without them
part 3 is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.sweepkit import Postgres, _pg_bin

PERFMODE = [sys.executable, "-m", "perfmode"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

CONFIG: dict[str, Any] = {
    "env": {"synthetic_length": 3000, "validation": 0.15, "synthetic_market": "cycles"},
    "ppo": {"n_steps": 128, "batch_size": 128, "n_epochs": 4, "net_arch": [64, 64]},
    "training": {"n_envs": 4, "checkpoint_freq": 4096, "nice": 5},
    "modes": {"performance": {"torch_threads": 1}},
    "sweep": {
        "space": {
            "ppo.learning_rate": {"log_uniform": [1.0e-4, 3.0e-3]},
            "ppo.ent_coef": {"log_uniform": [1.0e-4, 0.05]},
            "ppo.gamma": {"choice": [0.9, 0.99]},
            "ppo.n_epochs": {"choice": [4, 10]},
        },
        "reports": 4,
        "startup_trials": 3,
    },
}


def write_config(path: Path, market: str = "cycles") -> Path:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["env"]["synthetic_market"] = market
    path.write_text(yaml.safe_dump(cfg))
    return path


def set_mode(home: Path, mode: str) -> None:
    subprocess.run([*PERFMODE, "set", mode, "--home", str(home)], check=True, capture_output=True)


def perfmode(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*PERFMODE, *args], capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        raise RuntimeError(f"perfmode {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r


def show(home: Path, name: str, *storage: str) -> dict[str, Any]:
    return json.loads(
        perfmode("sweep", name, "--show", "--json", "--home", str(home), *storage).stdout
    )


def trial_attrs(storage: Any, name: str) -> list[dict[str, Any]]:
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    return [dict(t.user_attrs) | {"state": t.state.name} for t in study.trials]


def storage_share(*homes: Path) -> str:
    """From each trial's trial_cost.json: its storage time over its wall time, from counting
    the trials before its ask to its recorded result."""
    costs = [
        json.loads(p.read_text())
        for h in homes
        for p in sorted((h / "runs").glob("sweep-*/trial_cost.json"))
    ]
    costs = [c for c in costs if c.get("wall_s")]
    if not costs:
        return "n/a"
    shares = [c["storage_s"] / c["wall_s"] for c in costs]
    calls = sum(c["storage_calls"] for c in costs) / len(costs)
    return (
        f"mean {100 * sum(shares) / len(shares):.2f}%, max {100 * max(shares):.2f}% of "
        f"{len(costs)} trials ({calls:.0f} storage calls a trial)"
    )


def same_weights(a: Path, b: Path) -> bool:
    import torch

    from perfmode.checkpoint.folders import latest_checkpoint

    ca, cb = latest_checkpoint(a), latest_checkpoint(b)
    assert ca and cb and ca.state and cb.state
    wa, wb = ca.state.policy, cb.state.policy
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class Load:
    """What else ran: the load average and other processes' CPU while a part ran."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = psutil.cpu_times()

    def line(self) -> str:
        cpu1 = psutil.cpu_times()
        busy = sum(cpu1) - sum(self.cpu0) - (cpu1.idle - self.cpu0.idle)
        wall = time.monotonic() - self.t0
        return (
            f"machine busy {busy / wall:.2f} of {psutil.cpu_count()} cores over {wall:.0f} s "
            f"(all processes, others' included), load average {os.getloadavg()[0]:.1f}"
        )


def part_throughput(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    home, seq = root / "a", root / "seq"
    cfg = write_config(root / "a.yaml")
    for h in (home, seq):
        h.mkdir()
        set_mode(h, "performance")
    load = Load()
    t0 = time.monotonic()
    perfmode(
        "sweep",
        "tp",
        "--trials",
        str(args.trials),
        "--timesteps-per-trial",
        str(args.steps),
        "--jobs",
        "2",
        "--config",
        str(cfg),
        "--home",
        str(home),
        "--seed",
        "1",
    )
    sweep_s = time.monotonic() - t0
    sweep_load = load.line()
    load = Load()
    t0 = time.monotonic()
    for i in range(args.trials):
        trial = home / "runs" / f"sweep-tp-{i}" / "trial.yaml"
        perfmode("train", "--run", f"seq-{i}", "--config", str(trial), "--home", str(seq))
    seq_s = time.monotonic() - t0
    equal = same_weights(
        home / "runs" / "sweep-tp-0" / "checkpoints", seq / "runs" / "seq-0" / "checkpoints"
    )
    return {
        "sweep_per_hour": args.trials / sweep_s * 3600,
        "seq_per_hour": args.trials / seq_s * 3600,
        "sweep_s": sweep_s,
        "seq_s": seq_s,
        "sweep_load": sweep_load,
        "seq_load": load.line(),
        "weights_equal": equal,
        "journal_storage": storage_share(home),
    }


def part_two_homes(root: Path, args: argparse.Namespace) -> dict[str, Any] | str:
    bindir = _pg_bin()
    if bindir is None:
        return "skipped: PostgreSQL server binaries not found (apt-get install postgresql)"
    pg = Postgres(bindir)
    try:
        homes = {"quiet": root / "q", "performance": root / "p"}
        cfg = write_config(root / "pg.yaml")
        procs = []
        for mode, h in homes.items():
            h.mkdir()
            set_mode(h, mode)
        load = Load()
        for h in homes.values():
            procs.append(
                subprocess.Popen(
                    [
                        *PERFMODE,
                        "sweep",
                        "pg",
                        "--trials",
                        "1000",
                        "--timesteps-per-trial",
                        str(args.steps),
                        "--jobs",
                        "2",
                        "--config",
                        str(cfg),
                        "--home",
                        str(h),
                        "--storage",
                        pg.url,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=ENV,
                )
            )
        time.sleep(args.seconds)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=300)
        line = load.line()
        steps = {}
        for mode, h in homes.items():
            total = 0
            for status in (h / "runs").glob("sweep-pg-*/status.json"):
                total += json.loads(status.read_text()).get("timesteps") or 0
            steps[mode] = total
        attrs = trial_attrs(pg.driver_url, "pg")
        return {
            "steps": steps,
            "ratio": steps["performance"] / max(steps["quiet"], 1),
            "trials": {
                m: sum(1 for a in attrs if a.get("home") == str(h) and a["state"] == "COMPLETE")
                for m, h in homes.items()
            },
            "pg_storage": storage_share(*homes.values()),
            "load": line,
        }
    finally:
        pg.destroy()


def part_learnable(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for market in ("cycles", "random-walk"):
        home = root / market
        home.mkdir()
        set_mode(home, "performance")
        cfg = write_config(root / f"{market}.yaml", market)
        perfmode(
            "sweep",
            "learn",
            "--trials",
            str(args.learn_trials),
            "--timesteps-per-trial",
            str(args.learn_steps),
            "--jobs",
            "2",
            "--config",
            str(cfg),
            "--home",
            str(home),
            "--seed",
            "0",
        )
        best = show(home, "learn")["best"]
        ev = json.loads(
            perfmode(
                "evaluate", "--checkpoint", "sweep:learn", "--json", "--home", str(home)
            ).stdout
        )
        out[market] = {
            "validation": best["value"],
            "test": ev["policy"]["total_return"],
            "buy_and_hold": ev["buy_and_hold"]["total_return"],
            "flat": 0.0,
            "sharpe": ev["policy"]["sharpe"],
        }
    return out


def print_throughput(tp: dict[str, Any]) -> None:
    print("\n1. trials per hour, performance, 2 cores")
    print(
        f"   sweep --jobs 2        {tp['sweep_per_hour']:8.1f}  ({tp['sweep_s']:.0f} s; {tp['sweep_load']})"
    )
    print(
        f"   one after another     {tp['seq_per_hour']:8.1f}  ({tp['seq_s']:.0f} s; {tp['seq_load']})"
    )
    print(f"   speed-up              {tp['sweep_per_hour'] / tp['seq_per_hour']:8.2f}x")
    print(f"2. trial 0's weights == perfmode train with its trial.yaml: {tp['weights_equal']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4096)
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--learn-trials", type=int, default=6)
    ap.add_argument("--learn-steps", type=int, default=16384)
    ap.add_argument(
        "--parts",
        default="throughput,homes,learn",
        help="which to run: throughput (1, 2, 4's journal), homes (3, 4's PostgreSQL), learn (5)",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="every part, tiny: that it runs, not what it finds"
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    unknown = parts - {"throughput", "homes", "learn"}
    if unknown:
        sys.exit(f"--parts: unknown {', '.join(sorted(unknown))}; use throughput,homes,learn")
    if args.smoke:
        args.trials, args.steps, args.seconds = 2, 512, 20
        args.learn_trials, args.learn_steps = 1, 512
    print(
        f"bench_sweep: {psutil.cpu_count()} cores, {args.trials} trials x {args.steps} steps; "
        f"config n_steps 128 x 4 envs, net [64, 64]"
    )
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp)
        tp = part_throughput(root, args) if "throughput" in parts else None
        two = part_two_homes(root, args) if "homes" in parts else "not run (--parts)"
        learn = part_learnable(root, args) if "learn" in parts else {}
    if tp is not None:
        print_throughput(tp)
    print("3. two homes, one PostgreSQL study")
    if isinstance(two, str):
        print(f"   {two}")
    else:
        print(
            f"   trial-steps: performance {two['steps']['performance']:,}, quiet {two['steps']['quiet']:,}"
            f"  -> {two['ratio']:.2f}x (target >= 1.8x); complete trials {two['trials']}"
        )
        print(f"   ({two['load']})")
    print("4. storage's own cost, share of a trial's wall time (target < 2%)")
    if tp is not None:
        print(f"   journal     {tp['journal_storage']}")
    if not isinstance(two, str):
        print(f"   PostgreSQL  {two['pg_storage']}")
    if learn:
        print(
            f"5. best trial on its test part ({args.learn_trials} trials x {args.learn_steps} steps)"
        )
        print(
            f"   {'market':<12} {'validation':>10} {'test':>8} {'buy&hold':>9} {'flat':>6} {'sharpe':>7}"
        )
    for market, r in learn.items():
        print(
            f"   {market:<12} {r['validation']:>10.1%} {r['test']:>8.1%} {r['buy_and_hold']:>9.1%} "
            f"{r['flat']:>6.1%} {r['sharpe']:>7.2f}"
        )


if __name__ == "__main__":
    main()
