"""Do steps get slower or memory grow over a long run? 2,000 training steps each of the
simple-cell 3D-MEI (``configs/mei3d_simple_cell.yaml``) and the MRD demo
(``configs/mrd_demo.yaml``, with its remeshes), under Lightning's ``Trainer`` as ``fit`` runs
them (checkpoints, early stopping and logging off; validation as configured, not timed).

Per run: the median step time (``on_train_batch_start`` to ``on_train_batch_end``) of the first
``--window`` 200 steps after the warm-up and the last remesh (the same vertex count from then
on) against the last 200, and the resident memory (``/proc/self/statm``) growth from the end of
that warm-up to the end. Mitsuba users report steps and memory that grow over long loops
(mitsuba3 issues 433, 477, 954, 1890). A step's own work can grow too (a mesh with more folds
has more silhouettes and more face pairs to test), so every 10th step also times a fixed
workload on the run's renderer: a render and its backward pass of the run's initial mesh, one
view, seed 0 (``probe``); its ratio over the same windows is the machinery's drift alone.

Targets: last / first <= 1.1 and growth <= 50 MB. The last line is
``long_run step_ratio=<worst> target<=1.1 probe_ratio=<worst> memory_growth_mb=<worst>
target<=50``; the exit status is 1 when a target is missed. Results go into
``bench/results.json`` under ``long_run``.

    python bench/long_run.py [--steps 2000] [--window 200] [--runs mei3d mrd]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).with_name("results.json")
RATIO_TARGET, GROWTH_TARGET_MB = 1.1, 50.0
WARMUP = 50  # steps after the start (or the last remesh) before the first window
MRD_CALLBACKS = json.dumps([
    {"class_path": "callbacks.Remesh",
     "init_args": {"epochs": [8, 20], "edge_length_factor": 0.5, "max_vertices": 12000,
                   "keep_stages": False}},
    {"class_path": "callbacks.DecayLROnRemesh", "init_args": {"factor": 0.8}}])
RUNS = {
    "mei3d": ("mei3d_simple_cell.yaml", ["--trainer.callbacks", "[]"], 0),
    "mrd": ("mrd_demo.yaml", ["--trainer.callbacks", MRD_CALLBACKS], 20 * 16),  # last remesh
}


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(name: str, steps: int, window: int, out: Path) -> dict:
    import lightning.pytorch as pl

    from lit3d.cli import build as build_cli

    config, extra, last_remesh = RUNS[name]
    times: list[float] = []
    memory: list[float] = []
    probes: list[tuple[int, float]] = []
    fixed: dict = {}

    def probe(module) -> float:
        """Seconds of one render + backward of the run's initial mesh (one view, seed 0)."""
        if not fixed:
            mesh = module.current_mesh()
            views = module.evaluation_views() if name == "mei3d" else module.rig()
            fixed.update(vertices=mesh.vertices.detach().clone(), faces=mesh.faces.clone(),
                         views=views[:1].to(module.device))
        vertices = fixed["vertices"].clone().requires_grad_(True)
        start = time.perf_counter()
        images = module.renderer(vertices, fixed["faces"], fixed["views"], seed=0)
        images.sum().backward()
        return time.perf_counter() - start

    class Clock(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            probe(pl_module)  # fixes the initial mesh

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            times.append(time.perf_counter() - self.start)
            memory.append(resident_mb())
            if len(times) % 10 == 0:
                probes.append((len(times) - 1, probe(pl_module)))

    cli = build_cli(["--config", str(ROOT / "configs" / config), *extra,
                     "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
                     "--trainer.enable_progress_bar", "false",
                     "--trainer.enable_model_summary", "false",
                     "--trainer.max_epochs", "100000", "--trainer.max_steps", str(steps),
                     "--trainer.default_root_dir", str(out),
                     *(["--model.init_args.model.init_args.weights", "null"]
                       if name == "mrd" else [])])
    cli.trainer.callbacks.append(Clock())
    start = time.time()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    first = last_remesh + WARMUP
    if len(times) < first + 2 * window:
        raise SystemExit(f"{name}: only {len(times)} steps ran; need {first + 2 * window}")
    early = statistics.median(times[first:first + window])
    late = statistics.median(times[-window:])
    probe_early = statistics.median(t for i, t in probes if first <= i < first + window)
    probe_late = statistics.median(t for i, t in probes if i >= len(times) - window)
    return {"steps": len(times), "first_window_ms": round(1000 * early, 1),
            "last_window_ms": round(1000 * late, 1), "step_ratio": round(late / early, 3),
            "probe_first_ms": round(1000 * probe_early, 1),
            "probe_last_ms": round(1000 * probe_late, 1),
            "probe_ratio": round(probe_late / probe_early, 3),
            "memory_after_warmup_mb": round(memory[first - 1], 1),
            "memory_end_mb": round(memory[-1], 1),
            "memory_growth_mb": round(memory[-1] - memory[first - 1], 1),
            "wall_s": round(time.time() - start)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args()
    import torch

    results = {}
    for name in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = r = run(name, args.steps, args.window, Path(tmp))
        print(f"{name}: {r['steps']} steps in {r['wall_s']} s; step {r['first_window_ms']} -> "
              f"{r['last_window_ms']} ms (x{r['step_ratio']}), fixed probe {r['probe_first_ms']}"
              f" -> {r['probe_last_ms']} ms (x{r['probe_ratio']}), resident memory "
              f"{r['memory_after_warmup_mb']} -> {r['memory_end_mb']} MB "
              f"({r['memory_growth_mb']:+} MB)", flush=True)
    record = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    # Runs not asked for this time keep their last results.
    record["long_run"] = {**record.get("long_run", {}),
                          "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                                     f"threads {torch.get_num_threads()}", **results}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    ratio = max(r["step_ratio"] for r in results.values())
    probe = max(r["probe_ratio"] for r in results.values())
    growth = max(r["memory_growth_mb"] for r in results.values())
    print(f"long_run step_ratio={ratio} target<={RATIO_TARGET} probe_ratio={probe} "
          f"memory_growth_mb={growth} target<={GROWTH_TARGET_MB:g}")
    return 0 if ratio <= RATIO_TARGET and growth <= GROWTH_TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
