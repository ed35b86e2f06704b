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

from lit3d.modules.protocols import ShowsObjects


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


def save_curves(path: Path, history: dict[str, list[float]], steps: list[int]) -> Path:
    """Plots every recorded per-step scalar in its own panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in history if len(history[k]) == len(steps)]
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.2 * len(names)), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        ax.plot(steps, history[name], lw=1)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if name == "normalized_response":
            ax.axhline(1.0, color="k", ls="--", lw=0.8, label="optimum")
            ax.legend(loc="lower right")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
        self.history: dict[str, list[float]] = {}
        self._start = time.time()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not isinstance(outputs, dict):
            return
        self.steps.append(int(trainer.global_step))
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
        if images is not None:
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
        if self.steps:
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
