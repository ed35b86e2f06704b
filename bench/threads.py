"""Thread settings: torch and Dr.Jit share the cores.

lit3d's default gives Dr.Jit torch's thread count (``lit3d.render.mitsuba.match_threads``):
they take turns within a step, and Lightning's DDP launchers give each process
``cores / processes`` torch threads, which the renderer then follows. This script times the
3D-MEI default step (``configs/mei3d_simple_cell.yaml``, forward + backward + Adam) under
alternative settings, each in fresh processes:

- one process: (torch, Dr.Jit) threads = (C, C) [default], (C, 1), (1, C), (1, 1);
- two processes at once (two DDP ranks on one machine): (C/2, C/2) [default: Lightning's torch
  setting, followed by Dr.Jit] against (C/2, C) and (C, C) (every pool as large as the machine).

It prints steps per second for each, and last the default's throughput over the best setting's
in each scenario (1.0 = the default is the best; exit status 1 below 0.9). Results go into
``bench/results.json`` under ``threads``.

    python bench/threads.py [--steps 30] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results.json")

CHILD = r"""
import sys, time
sys.path.insert(0, {root!r})
import torch
import lit3d
import lit3d.render.mitsuba as mitsuba
import bench.step_breakdown as b

torch_threads, drjit_threads, steps, warmup = {args}
torch.set_num_threads(torch_threads)

def fixed(dr, variant):
    if dr.thread_count() != drjit_threads:
        dr.set_thread_count(drjit_threads)

mitsuba.match_threads = fixed
module, views = b.build("mei3d_simple_cell")
optimizer = torch.optim.Adam(module.param_groups())
clock = b.Clock(torch.device("cpu"))
for i in range(warmup + steps):
    b.mei3d_step(module, views, optimizer, clock, i)
print("SECONDS", sum(clock.times["step"][warmup:]) / steps)
"""


def run(settings: list[tuple[int, int]], steps: int, warmup: int) -> list[float]:
    """Steps per second of each process, all started together."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = [subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), args=(t, d, steps, warmup))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
        for t, d in settings]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        line = [x for x in out.splitlines() if x.startswith("SECONDS")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"benchmark process failed: {out[-2000:]}")
        rates.append(1.0 / float(line[-1].split()[1]))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    half = max(cores // 2, 1)
    scenarios = {
        "one process": {"default": [(cores, cores)], "torch C, drjit 1": [(cores, 1)],
                        "torch 1, drjit C": [(1, cores)], "torch 1, drjit 1": [(1, 1)]},
        "two processes": {"default": [(half, half)] * 2,
                          "torch C/2, drjit C": [(half, cores)] * 2,
                          "torch C, drjit C": [(cores, cores)] * 2},
    }
    print(f"{cores} cores; 3D-MEI default step (mei3d_simple_cell), {args.steps} steps")
    record, ratios = {}, {}
    for scenario, settings in scenarios.items():
        rates = {}
        for name, procs in settings.items():
            total = sum(run(procs, args.steps, args.warmup))
            rates[name] = total
            print(f"{scenario}: {name} {procs[0]}: {total:.2f} steps/s")
        ratios[scenario] = rates["default"] / max(rates.values())
        record[scenario] = {k: round(v, 3) for k, v in rates.items()}
    record["default_over_best"] = {k: round(v, 3) for k, v in ratios.items()}
    all_results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    all_results["threads"] = record
    RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
    print("threads default/best " + " ".join(f"{k.replace(' ', '_')}={v:.2f}"
                                            for k, v in ratios.items()))
    return 0 if min(ratios.values()) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
