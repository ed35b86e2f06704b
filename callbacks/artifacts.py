"""``FitArtifacts``: what every finished fit leaves in its log dir.

Files: ``mesh.ply`` (final mesh; ``mesh_<name>.ply`` for each of a module's ``meshes()``),
``render.png`` (final stimulus as the model saw it, sRGB), for modules whose stimuli are objects
(:class:`~lit3d.modules.protocols.ShowsObjects`, the 3D-MEIs) ``object.png`` and
``turntable.webp`` (the whole object from around it), ``curves.png`` (loss and response per
step), ``metrics.json`` (final metrics) and, for modules whose ``final_evaluation`` returns a
``"summary"`` dict, ``summary.json``. The headline metric (and the module's
``headline_extras``) is printed as the run's last line, e.g.
``normalized_response=0.934 self_intersections=0.000 area_ratio=1.652``.

A module takes part by implementing ``final_evaluation() -> dict`` (floats, plus optional
``"images"`` (B, 3, H, W)) and ``current_mesh()``, and by naming its ``headline_metric``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from lit3d.figures import pyplot, save_figure
from lit3d.modules.protocols import HasEpochHistory, ShowsObjects


def linear_to_srgb(images: Tensor) -> Tensor:
    """sRGB transfer function of linear values, clipped to [0, 1] (display only)."""
    x = images.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.pow(1 / 2.4) - 0.055)


def save_image(path: Path, image: Tensor, upscale: int = 1) -> Path:
    """Writes a (3, H, W) linear-RGB image as an sRGB PNG (nearest-neighbour ``upscale``)."""
    from PIL import Image

    rgb = linear_to_srgb(image.detach().float().cpu())
    array = (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
    picture = Image.fromarray(array)
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale),
                                 Image.NEAREST)
    picture.save(path)
    return path


#: Readable names of the recorded scalars.
LABELS = {"loss": "training loss", "response": "response", "normalized_response":
          "normalized response", "mean_response": "mean response over units"}


def save_curves(path: Path, history: dict[str, list[float]], steps: list[int]) -> Path:
    """Plots every recorded per-step scalar in its own titled panel against the step."""
    plt = pyplot()
    names = [k for k in history if len(history[k]) == len(steps)]
    fig, axes = plt.subplots(len(names), 1, figsize=(6.5, 2.3 * len(names) + 0.4), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        label = LABELS.get(name, name.replace("_", " "))
        ax.plot(steps, history[name], lw=1, label="per step")
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if name == "normalized_response":
            ax.axhline(1.0, color="k", ls="--", lw=0.8, label="optimum")
            ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle("Training curves", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def save_epoch_curves(path: Path, epochs: list[int], losses: list[float],
                      series: dict[str, list[tuple[int, float]]], remesh_epochs: list[int],
                      title: str = "") -> Path:
    """Per-epoch panels: the mean training loss of each epoch, then every ``series`` (name ->
    (epoch, value) points, e.g. the validation similarity and RSA τ), with the remesh epochs
    marked by dotted lines."""
    import numpy as np

    plt = pyplot()
    epoch_ids = sorted(set(epochs))
    mean_loss = [float(np.mean([l for e, l in zip(epochs, losses) if e == k])) for k in epoch_ids]
    panels = [("training loss (mean over the epoch)", list(zip(epoch_ids, mean_loss)))]
    panels += [(name, points) for name, points in series.items() if points]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.5, 2.3 * len(panels) + 0.5),
                             sharex=True, squeeze=False)
    for ax, (name, points) in zip(axes[:, 0], panels):
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1, label=name)
        for k, epoch in enumerate(remesh_epochs):
            ax.axvline(epoch, color="tab:red", ls=":", lw=1,
                       label="remesh" if k == 0 else None)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(name.split(" (")[0])
        ax.grid(alpha=0.3)
        if remesh_epochs:
            ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("epoch")
    fig.suptitle(title or "Curves per epoch", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def save_image_grid(path: Path, image: Tensor, rows: list[str], columns: list[str]) -> Path:
    """A (3, R·H, C·W) linear image of R × C renders as a figure whose rows and columns are
    named (e.g. reconstruction above target, one column per view)."""
    plt = pyplot()
    rgb = linear_to_srgb(image.detach().float().cpu())
    h, w = rgb.shape[1] // len(rows), rgb.shape[2] // len(columns)
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(2.2 * len(columns) + 0.6, 2.3 * len(rows) + 0.3))
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(rgb[:, r * h:(r + 1) * h, c * w:(c + 1) * w].permute(1, 2, 0).numpy(),
                      interpolation="nearest")
            ax.set_title(f"{row}, {column}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(row)
    fig.tight_layout()
    return save_figure(fig, path)


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy: non-finite floats (also inside lists) become ``null``."""
    def fix(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in values.items()}


class FitArtifacts(pl.Callback):
    """Records per-step scalars and writes the final artifacts after ``fit``.

    Args:
        upscale: nearest-neighbour magnification of the saved renders.
        mesh_format: suffix of the saved mesh (``ply``, ``obj``, ``glb``).
        object_size, turntable_size, object_spp: pixels of the object figure's panels and of
            the turntable's frames, and their samples per pixel (the turntable uses half).
    """

    def __init__(self, upscale: int = 4, mesh_format: str = "ply", object_size: int = 512,
                 turntable_size: int = 320, object_spp: int = 32):
        self.upscale = upscale
        self.mesh_format = mesh_format
        self.object_size, self.turntable_size = int(object_size), int(turntable_size)
        self.object_spp = int(object_spp)
        self.steps: list[int] = []
        self.epochs: list[int] = []
        self.history: dict[str, list[float]] = {}
        self._start = time.time()

    def state_dict(self) -> dict[str, Any]:
        """The per-step record travels with checkpoints: a resumed run's curves are whole."""
        return {"steps": self.steps, "epochs": self.epochs, "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = list(state_dict.get("steps", []))
        self.epochs = list(state_dict.get("epochs", []))
        self.history = {k: list(v) for k, v in state_dict.get("history", {}).items()}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not isinstance(outputs, dict):
            return
        self.steps.append(int(trainer.global_step))
        self.epochs.append(int(trainer.current_epoch))
        for name, value in outputs.items():
            if isinstance(value, Tensor) and value.numel() == 1:
                self.history.setdefault(name, []).append(float(value.detach()))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if not trainer.is_global_zero or not hasattr(pl_module, "final_evaluation"):
            return
        out = Path(log_dir or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        was_training = pl_module.training
        pl_module.eval()
        results = pl_module.final_evaluation()
        pl_module.train(was_training)
        summary = results.pop("summary", None)
        images = results.pop("images", None)
        rows, columns = results.pop("image_rows", None), results.pop("image_columns", None)
        if images is not None and rows and columns:
            save_image_grid(out / "render.png", images[0], rows, columns)
        elif images is not None:
            save_image(out / "render.png", images[0], self.upscale)
        if isinstance(pl_module, ShowsObjects):
            pl_module.write_object_figures(out, results, self.object_size, self.turntable_size,
                                           self.object_spp)
        if hasattr(pl_module, "meshes"):  # one mesh per unit (MEI3DPopulation)
            from lit3d.geometry.io import save_mesh

            for name, (vertices, faces) in pl_module.meshes().items():
                save_mesh(out / f"mesh_{name}.{self.mesh_format}", vertices, faces)
        elif hasattr(pl_module, "current_mesh"):
            from lit3d.geometry.io import save_mesh

            vertices, faces = pl_module.current_mesh()
            save_mesh(out / f"mesh.{self.mesh_format}", vertices, faces)
        if self.steps and isinstance(pl_module, HasEpochHistory) and "loss" in self.history:
            from callbacks.remesh import Remesh

            remeshes = sorted({e for c in trainer.callbacks if isinstance(c, Remesh)
                               for e in c.epochs if e <= trainer.current_epoch})
            chamfer = results.get("chamfer")
            title = ("Curves per epoch" + (f" (final Chamfer distance {chamfer:.4f})"
                                           if isinstance(chamfer, float) else ""))
            save_epoch_curves(out / "curves.png", self.epochs, self.history["loss"],
                              pl_module.epoch_history(), remeshes, title)
        elif self.steps:
            save_curves(out / "curves.png", self.history, self.steps)
        results.update(
            steps=int(trainer.global_step),
            epochs=int(trainer.current_epoch),
            wall_time_s=round(time.time() - self._start, 2),
        )
        clean = _finite(results)
        (out / "metrics.json").write_text(json.dumps(clean, indent=2) + "\n")
        if summary is not None:
            (out / "summary.json").write_text(json.dumps(_finite(summary), indent=2) + "\n")
        headline = getattr(pl_module, "headline_metric", None)
        if headline in results:
            print(f"artifacts written to {out}", flush=True)
            extras = [k for k in getattr(pl_module, "headline_extras", ()) if k in results]
            print(" ".join(f"{k}={results[k]:.3f}" for k in (headline, *extras)), flush=True)
