"""``FitArtifacts``: what every finished fit leaves in its log dir.

Files: ``mesh.ply`` (final mesh; ``mesh_<name>.ply`` for each of a module's ``meshes()``),
``render.png`` (final stimulus as the model saw it, sRGB), for modules whose stimuli are objects
(:class:`~lit3d.modules.protocols.ShowsObjects`, the 3D-MEIs) ``object.png`` and
``turntable.webp`` (the whole object from around it), ``curves.png`` (loss and response per
step), ``metrics.json`` (final metrics) and, for modules whose ``final_evaluation`` returns a
``"summary"`` dict, ``summary.json``. The headline metric (and the module's
``headline_extras``) is printed as the run's last line, e.g.
``normalized_response=0.934 self_intersections=0.000 area_ratio=1.652``.

A module takes part through the contracts of :mod:`lit3d.modules.protocols`: ``Evaluated``
(``final_evaluation()``, ``headline_metric``), ``HasMesh`` or ``HasMeshes``, and optionally
``ShowsObjects`` and ``HasEpochHistory``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from lit3d.analysis.curves import save_curves, save_epoch_curves
from lit3d.images import save_image, save_image_grid
from lit3d.modules.protocols import (
    Evaluated,
    HasEpochHistory,
    HasMesh,
    HasMeshes,
    ShowsObjects,
)


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
        if not trainer.is_global_zero or not isinstance(pl_module, Evaluated):
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
        if isinstance(pl_module, HasMeshes):  # one mesh per unit (MEI3DPopulation)
            from lit3d.geometry.io import save_mesh

            for name, (vertices, faces) in pl_module.meshes().items():
                save_mesh(out / f"mesh_{name}.{self.mesh_format}", vertices, faces)
        elif isinstance(pl_module, HasMesh):
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
        headline = pl_module.headline_metric
        if headline in results:
            print(f"artifacts written to {out}", flush=True)
            extras = [k for k in pl_module.headline_extras if k in results]
            print(" ".join(f"{k}={results[k]:.3f}" for k in (headline, *extras)), flush=True)
