"""What a big metrics.csv costs the page's server: the first read and the first chart event.

    python benchmarks/bench_ui_metrics.py [--mb 100]

Writes a metrics.csv of about MB megabytes (the mode flipping every row, the worst case for
the chart's mode shading) to a temp folder, then, in a fresh process, does what the server
does when a page opens: poll the file and build the first chart event. Prints the time,
the process's peak memory and the event's size. Run it with PYTHONPATH pointing at two
source trees to compare them side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import json, resource, sys, time
from pathlib import Path
from perfmode.web.metrics import MAX_POINTS, MetricsTail
t0 = time.perf_counter()
tail = MetricsTail(Path(sys.argv[1]))
tail.poll()
event = json.dumps(tail.series.columns(0, MAX_POINTS))
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": took, "peak_bytes": peak, "event_bytes": len(event),
                  "rows_held": len(tail.series)}))
"""


def write_metrics(path: Path, mb: int) -> int:
    row = "{},2026-12-01T00:00:00Z,{},1000.0,1.0,0.5\n"
    rows = 0
    with open(path, "w") as f:
        f.write("timesteps,time,mode,fps,cpu_cores,ep_rew_mean\n")
        while f.tell() < mb << 20:
            f.write(
                "".join(
                    row.format(i, ("quiet", "performance")[i % 2])
                    for i in range(rows, rows + 10_000)
                )
            )
            rows += 10_000
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.csv"
        rows = write_metrics(path, args.mb)
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
    print(
        f"metrics.csv     {path.stat().st_size if path.exists() else args.mb << 20:,} bytes, {rows:,} rows"
    )
    print(f"first read      {r['seconds']:.2f} s")
    print(f"peak memory     {r['peak_bytes'] / 2**20:,.0f} MiB")
    print(f"first event     {r['event_bytes']:,} bytes")
    print(f"rows held       {r['rows_held']:,}")


if __name__ == "__main__":
    main()
