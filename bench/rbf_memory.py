"""P2: memory and time of the RBF deformation with control points at all V vertices.

The dense field builds a (V, V) kernel (V = 40k: 6.4 GB a copy); the chunked one
(:func:`lit3d.geometry.rbf.rbf_displacement_chunked`) evaluates 8 MB blocks and recomputes
them in the backward pass. Each measurement runs in a fresh process; the extra peak memory of
one forward + backward is the growth of the process's peak resident set
(``ru_maxrss``) over its value just before. Prints one line a figure, the targets' ratios last
(measured / target, <= 1 meets it), writes them into ``bench/results.json``, and exits 1 if a
target is missed.

    python bench/rbf_memory.py [--large 40000] [--medium 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")
MEMORY_TARGET_MB = 256.0
TIME_TARGET_RATIO = 2.0

CHILD = r"""
import json, resource, sys, time
import torch
from lit3d.geometry.rbf import rbf_displacement, rbf_displacement_chunked
torch.manual_seed(0)
mode, v, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
side = int(round(v ** 0.5))
grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side),
                                  indexing="ij"), -1).reshape(-1, 2)
points = torch.cat([grid, 0.1 * torch.sin(3 * grid[:, :1])], 1)  # (V, 3) a wavy sheet
fn = rbf_displacement if mode == "dense" else rbf_displacement_chunked
offsets = (0.01 * torch.randn(points.shape)).requires_grad_(True)
log_sigma = torch.full((points.shape[0],), float(torch.log(torch.tensor(4.0 / side))),
                       requires_grad=True)
def step():
    out = fn(points, points, offsets, log_sigma.exp())
    out.square().sum().backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(repeats):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_peak_mb": (after - before) / 1024,
                  "seconds": sorted(times)[len(times) // 2],
                  "vertices": int(points.shape[0])}))
"""


def measure(mode: str, vertices: int, repeats: int) -> dict:
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", CHILD, mode, str(vertices), str(repeats)],
                            capture_output=True, text=True, cwd=root,
                            env={**__import__("os").environ, "PYTHONPATH": str(root)})
    if result.returncode != 0:
        raise SystemExit(f"{mode} V={vertices} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", type=int, default=40_000)
    parser.add_argument("--medium", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    large = measure("chunked", args.large, 1)
    print(f"chunked V={large['vertices']}: forward+backward {large['seconds']:.1f} s, extra peak "
          f"memory {large['extra_peak_mb']:.0f} MB (dense would hold a "
          f"{4 * large['vertices'] ** 2 / 2**20:.0f} MB kernel)")
    dense = measure("dense", args.medium, args.repeats)
    chunked = measure("chunked", args.medium, args.repeats)
    print(f"V={dense['vertices']}: dense {dense['seconds']:.2f} s "
          f"({dense['extra_peak_mb']:.0f} MB extra), chunked {chunked['seconds']:.2f} s "
          f"({chunked['extra_peak_mb']:.0f} MB extra)")
    memory_ratio = large["extra_peak_mb"] / MEMORY_TARGET_MB
    time_ratio = chunked["seconds"] / dense["seconds"] / TIME_TARGET_RATIO
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["P2_rbf"] = {
        "large_vertices": large["vertices"],
        "large_extra_peak_mb": round(large["extra_peak_mb"], 1),
        "large_seconds": round(large["seconds"], 2), "medium_vertices": dense["vertices"],
        "medium_dense_seconds": round(dense["seconds"], 3),
        "medium_chunked_seconds": round(chunked["seconds"], 3),
        "memory_ratio_to_target": round(memory_ratio, 3),
        "time_ratio_to_target": round(time_ratio, 3),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"P2 memory: {large['extra_peak_mb']:.0f} MB / {MEMORY_TARGET_MB:.0f} MB target "
          f"= {memory_ratio:.2f}")
    print(f"P2 time: chunked/dense {chunked['seconds'] / dense['seconds']:.2f} / "
          f"{TIME_TARGET_RATIO:.0f} target = {time_ratio:.2f}")
    worst = max(memory_ratio, time_ratio)
    print(f"P2 ratio (worst of memory, time; <= 1 meets the targets) = {worst:.2f}")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
