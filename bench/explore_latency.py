"""Update latency of ``lit3d explore``: from a control's change to the page's new render and
response, at the default config's size (``configs/mei3d_simple_cell.yaml``: 49x49 sheet, 64 px,
the fit's 64 samples per pixel), on its initial mesh or a run's (``--run``).

The explorer runs in this process (its server on a free loopback port, no browser); each
update moves the light azimuth by one degree and waits until the explorer has published the
render, model input and response. Median, min and max of ``--updates`` updates after 3 of
warm-up. Last line: ``explore_latency_ms=<median> target<=500``; exit status 1 when missed.
Results go into ``bench/results.json`` under ``explore_latency``.

    python bench/explore_latency.py [--run runs/mei3d_simple_cell/version_0] [--updates 30]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_MS = 500.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a 3D-MEI run directory")
    parser.add_argument("--updates", type=int, default=30)
    args = parser.parse_args()
    from lit3d.commands import explore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = (["--run", args.run] if args.run else
              ["--config", str(ROOT / "configs/mei3d_simple_cell.yaml")])
    explorer = explore.run([*source, "--port", str(port), "--light", "10,75"], serve=False)
    times = []
    try:
        explorer.idle()
        for k in range(3 + args.updates):
            start = time.perf_counter()
            explorer.light_az.value = 11 + k
            while explorer.shown.get("look") is None or \
                    explorer.shown["look"].light != (11.0 + k, 75.0):
                time.sleep(0.001)
            if k >= 3:
                times.append(1000 * (time.perf_counter() - start))
    finally:
        explorer.stop()
    median = statistics.median(times)
    print(f"updates: {len(times)}; min {min(times):.1f} ms, median {median:.1f} ms, "
          f"max {max(times):.1f} ms")
    results_file = ROOT / "bench" / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results["explore_latency"] = {"median_ms": round(median, 1), "min_ms": round(min(times), 1),
                                  "max_ms": round(max(times), 1), "updates": len(times),
                                  "target_ms": TARGET_MS, "source": args.run or "config"}
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print(f"explore_latency_ms={median:.1f} target<={TARGET_MS:g}")
    return 0 if median <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
