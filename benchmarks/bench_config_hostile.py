"""Hostile configs are answered at once: time and peak memory per case, beside a valid config.

For each file: how long ``load_config`` takes in this process (best of 3), and how long
``perfmode train --config FILE`` takes from start to exit (its exit code and peak RSS), next
to the same for the documented default config (which goes on to train: only its load time
and ``perfmode config show`` are timed). Target: exit 2 with one line, well under a second
of config work, no more memory than a valid config. Before the bounded reader, the alias
bomb took 86 s and 5.7 GB, the 50 MB list 454 s and 6.7 GB, nesting 20,000 deep a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perfmode.config.schema import default_config_text, load_config
from perfmode.errors import PerfmodeError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.hostile_yaml import alias_bomb

CASES = {
    "default config (valid)": default_config_text,
    "alias bomb (426 B)": alias_bomb,
    "nested 20,000 deep": lambda: "env:\n  window: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "50 MB list, unknown key": lambda: "env:\n  junk:\n" + "  - 1234567\n" * 4_400_000,
    "250 KB list, unknown key": lambda: "env:\n  junk:\n" + "  - 1\n" * 42_000,
    "5,000-digit number": lambda: "env:\n  window: " + "9" * 5000 + "\n",
}


def load_seconds(path: Path) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        with contextlib.suppress(PerfmodeError):
            load_config(path)
        best = min(best, time.perf_counter() - t0)
    return best


# The child reports its own peak: VmHWM belongs to the process image after exec, whereas
# ru_maxrss carries over the parent's size from the fork.
PEAK_AT_EXIT = """
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("peak-kib", line.split()[1], file=sys.stderr)
atexit.register(peak)
from perfmode.cli import main
sys.argv[0] = "perfmode"
main()
"""


def run_cli(*args: str) -> tuple[int, float, float, str]:
    """Exit code, wall seconds, peak RSS (MiB) and first stderr line of one perfmode run."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_AT_EXIT, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    lines = proc.stderr.strip().splitlines()
    peaks = [int(line.split()[1]) for line in lines if line.startswith("peak-kib ")]
    message = next((line for line in lines if not line.startswith("peak-kib ")), "")
    return proc.returncode, wall, (peaks[-1] / 1024 if peaks else float("nan")), message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'case':<26}{'size':>10}{'load_config':>13}{'CLI exit':>10}{'CLI wall':>10}"
            f"{'CLI RSS':>10}  message"
        )
        for name, make in CASES.items():
            path = Path(tmp) / "c.yaml"
            path.write_text(make())
            size = path.stat().st_size
            load = load_seconds(path)
            valid = name.startswith("default")
            home = Path(tmp) / "home"
            args = (
                ("config", "show", "--config", str(path))
                if valid
                else ("train", "--config", str(path), "--home", str(home))
            )
            rc, wall, rss, last = run_cli(*args)
            print(
                f"{name:<26}{size:>10,}{load * 1000:>11.1f}ms{rc:>10}{wall:>9.2f}s"
                f"{rss:>7.0f}MiB  {last[:70]}"
            )
        print("(the valid config's CLI column is `perfmode config show`; the others `train`)")


if __name__ == "__main__":
    main()
