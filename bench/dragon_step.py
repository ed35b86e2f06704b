"""A dragon-sized MRD shape reconstruction: step, epoch and validation times, peak memory.

``configs/mrd_dragon.yaml`` as the paper sized it (256 x 256, 25 Fibonacci views, Large Steps
λ = 15, lr 0.1) with the latent loss on ResNet50 (random weights: offline, same cost), the
renders at ``--spp`` (64) and, in place of the downloaded dragon, a procedural genus-1 target
of ``--faces`` faces (``BumpyTorus``; 50 000 by default), lit by the procedural sun sky
(``configs/environments/sunsky.yaml``: nothing to download). ``--steps`` training steps (one view
each) in two epochs, remeshed at the start of the second (``callbacks.Remesh``), validation
over all 25 views after each epoch. Prints one line a figure and writes them into
``bench/results.json`` under ``dragon_sized`` (per device). Sized for a GPU; ``--device cpu``
runs it (slowly) anywhere.

    python bench/dragon_step.py [--device cuda] [--steps 20] [--spp 64] [--faces 50000]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

RESULTS = Path(__file__).with_name("results.json")


def torus_segments(faces: int) -> tuple[int, int]:
    """(segments, tube_segments) of a torus grid with about ``faces`` triangles (2 per
    quad), the ring 2.5x as finely divided as the tube."""
    tube = max(3, round(math.sqrt(faces / 5.0)))
    return max(3, round(faces / (2 * tube))), tube


def build(spp: int, faces: int):
    """(module, datamodule) of the dragon config with this benchmark's overrides."""
    from lit3d.cli import build as build_cli

    segments, tube = torus_segments(faces)
    M = "--model.init_args."
    cli = build_cli(["--config", str(ROOT / "configs" / "mrd_dragon.yaml"),
                     "--config", str(ROOT / "configs" / "environments" / "sunsky.yaml"),
                     "--trainer.logger",
                     "false", M + "loss", "latent", M + "model.init_args.weights", "null",
                     M + "renderer.init_args.spp", str(spp),
                     M + "target", "lit3d.geometry.procedural.BumpyTorus",
                     M + "target.init_args.segments", str(segments),
                     M + "target.init_args.tube_segments", str(tube)])
    return cli.model, cli.datamodule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--spp", type=int, default=64)
    parser.add_argument("--faces", type=int, default=50_000)
    args = parser.parse_args()
    import lightning.pytorch as pl

    from callbacks import DecayLROnRemesh, Remesh

    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    class Timer(pl.Callback):
        """Wall times of every training step, epoch, validation and the remesh."""

        def __init__(self):
            self.steps: list[float] = []
            self.epochs: list[float] = []
            self.validations: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            sync()
            self._step = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            sync()
            self.steps.append(time.perf_counter() - self._step)

        def on_train_epoch_start(self, trainer, pl_module):
            sync()
            self._epoch = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            sync()
            self.epochs.append(time.perf_counter() - self._epoch)

        def on_validation_start(self, trainer, pl_module):
            sync()
            self._validation = time.perf_counter()

        def on_validation_end(self, trainer, pl_module):
            sync()
            self.validations.append(time.perf_counter() - self._validation)

    module, datamodule = build(args.spp, args.faces)
    target_faces = int(module.target_faces.shape[0])
    per_epoch = max(1, args.steps // 2)
    timer = Timer()
    trainer = pl.Trainer(accelerator="gpu" if cuda else "cpu", devices=1, max_epochs=2,
                         limit_train_batches=per_epoch, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0,
                         callbacks=[Remesh(epochs=[1], max_vertices=100_000),
                                    DecayLROnRemesh(0.8), timer])
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    sync()
    total = time.perf_counter() - start
    first, second = timer.steps[:per_epoch], timer.steps[per_epoch:]
    record = {
        "target_faces": target_faces, "image_size": 256, "spp": args.spp, "views": 25,
        "network": "resnet50", "steps": len(timer.steps),
        "vertices_after_remesh": int(module.shape.num_vertices),
        # The first steps of a run record Dr.Jit's kernels: medians skip the first two.
        "step_s_median_epoch0": round(statistics.median(first[2:] or first), 4),
        "step_s_median_epoch1": round(statistics.median(second[2:] or second), 4),
        "first_step_s": round(timer.steps[0], 3),
        "train_epoch_s": [round(t, 3) for t in timer.epochs],
        "validation_s": [round(t, 3) for t in timer.validations],
        "fit_s": round(total, 2),
    }
    if cuda:
        free, capacity = torch.cuda.mem_get_info(device)
        record["peak_torch_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        record["device_memory_in_use_gb"] = round((capacity - free) / 2**30, 3)
    for key, value in record.items():
        print(f"{args.device} dragon-sized: {key} {value}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("dragon_sized", {})[args.device] = record
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
