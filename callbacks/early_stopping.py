"""Early stopping that also restores the best mesh at the end (MRD: patience 50 on the loss)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping


class EarlyStoppingRestoreBest(EarlyStopping):
    """Lightning's :class:`~lightning.pytorch.callbacks.EarlyStopping` (default: the epoch mean
    of ``train/loss``, ``mode="min"``, patience 50) that snapshots the module's mesh
    (``current_mesh()``: vertices and faces, so remeshing in between is fine) whenever the
    monitored value improves by more than ``min_delta``, and puts it back (``set_mesh``) when
    training ends, before the final artifacts are written.

    Args:
        restore_best: put the best mesh back at the end.
        monitor, patience, min_delta, mode, **kwargs: as ``EarlyStopping``.
    """

    def __init__(self, monitor: str = "train/loss_epoch", patience: int = 50,
                 min_delta: float = 0.0, mode: str = "min", restore_best: bool = True,
                 **kwargs: Any):
        super().__init__(monitor=monitor, patience=patience, min_delta=min_delta, mode=mode,
                         **kwargs)
        self.restore_best = restore_best
        self.best_mesh: dict[str, Any] | None = None

    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        before = self.best_score.clone()
        super()._run_early_stopping_check(trainer)
        if not torch.equal(before, self.best_score.to(before.device)):
            vertices, faces = trainer.lightning_module.current_mesh()
            self.best_mesh = {"vertices": vertices.detach().clone(), "faces": faces.clone(),
                              "epoch": int(trainer.current_epoch),
                              "score": float(self.best_score)}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.restore_best and self.best_mesh is not None:
            pl_module.set_mesh(self.best_mesh["vertices"].to(pl_module.device),
                               self.best_mesh["faces"].to(pl_module.device))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["best_mesh"] = self.best_mesh
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_mesh = state_dict.get("best_mesh")
