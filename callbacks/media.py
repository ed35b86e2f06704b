"""``LogMedia``: renders and the mesh to W&B during and after a fit.

Every ``media_every_n_epochs`` epochs (a setting of :class:`lit3d.loggers.WandbLogger`) and at
the end of the fit, for every W&B logger attached: the module's ``preview_images()``
(sRGB, one image a view) as ``media/renders`` and its ``current_mesh()`` as a W&B ``Object3D``
(GLB) as ``media/mesh``; at the end also the run's summary (``final_evaluation``'s headline
numbers, via :class:`callbacks.FitArtifacts`'s ``metrics.json``) in the W&B run summary.
Without a W&B logger it does nothing. The command line attaches it to every fit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger

from lit3d.modules.protocols import HasMesh, HasMeshes, Previews
from lit3d.render.tonemap import srgb_encode


def _wandb_loggers(trainer: pl.Trainer) -> list[WandbLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


class LogMedia(pl.Callback):
    """Logs renders and the mesh to W&B loggers (see the module docstring).

    Args:
        every_n_epochs: default period when the logger does not set ``media_every_n_epochs``.
    """

    def __init__(self, every_n_epochs: int = 5):
        self.every_n_epochs = int(every_n_epochs)

    def _period(self, logger: WandbLogger) -> int:
        return int(getattr(logger, "media_every_n_epochs", self.every_n_epochs))

    def log_media(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                  loggers: list[WandbLogger], tag: str) -> None:
        import wandb

        images = pl_module.preview_images() if isinstance(pl_module, Previews) else None
        meshes = {}
        if isinstance(pl_module, HasMeshes):
            meshes = pl_module.meshes()
        elif isinstance(pl_module, HasMesh):
            meshes = {"mesh": pl_module.current_mesh()}
        files = {}
        if meshes:
            from lit3d.geometry.io import save_mesh

            folder = Path(tempfile.mkdtemp(prefix="lit3d-mesh-"))
            for name, (vertices, faces) in meshes.items():
                files[name] = save_mesh(folder / f"{name}_{tag}.glb", vertices, faces)
        for logger in loggers:
            payload = {}
            if images is not None:
                pictures = srgb_encode(images.detach().float().cpu()).permute(0, 2, 3, 1)
                payload["media/renders"] = [wandb.Image(p.numpy(), caption=f"{tag} view {i}")
                                            for i, p in enumerate(pictures)]
            for name, path in files.items():
                key = "media/mesh" if name == "mesh" else f"media/mesh/{name}"
                payload[key] = wandb.Object3D(str(path))
            if payload:
                logger.experiment.log({**payload, "trainer/global_step": trainer.global_step})

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        due = [logger for logger in _wandb_loggers(trainer)
               if self._period(logger) > 0
               and (trainer.current_epoch + 1) % self._period(logger) == 0]
        if due:
            was_training = pl_module.training
            pl_module.eval()
            self.log_media(trainer, pl_module, due, f"epoch{trainer.current_epoch}")
            pl_module.train(was_training)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = _wandb_loggers(trainer)
        if not loggers:
            return
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        self.log_media(trainer, pl_module, loggers, "final")
        pl_module.train(was_training)
        metrics = Path(log_dir or trainer.default_root_dir) / "metrics.json"
        if metrics.is_file():
            for logger in loggers:
                logger.experiment.summary.update(json.loads(metrics.read_text()))
