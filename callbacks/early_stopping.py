"""Early stopping that also restores the best parameters at the end (MRD: patience 50 on the
loss)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping


class EarlyStoppingRestoreBest(EarlyStopping):
    """Lightning's :class:`~lightning.pytorch.callbacks.EarlyStopping` (default: the epoch mean
    of ``train/loss``, ``mode="min"``, patience 50) that snapshots the module's parameters
    whenever the monitored value improves by more than ``min_delta`` and puts them back when
    training ends, before the final artifacts are written. The module must be
    :class:`~lit3d.modules.protocols.Snapshots` (MRD's modules: the mesh's vertices and faces,
    so remeshing in between is fine, or the material's parameters).

    Args:
        restore_best: put the best parameters back at the end.
        monitor, patience, min_delta, mode, **kwargs: as ``EarlyStopping``.
    """

    def __init__(self, monitor: str = "train/loss_epoch", patience: int = 50,
                 min_delta: float = 0.0, mode: str = "min", restore_best: bool = True,
                 **kwargs: Any):
        super().__init__(monitor=monitor, patience=patience, min_delta=min_delta, mode=mode,
                         **kwargs)
        self.restore_best = restore_best
        self.best: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from lit3d.modules.protocols import Snapshots

        super().setup(trainer, pl_module, stage)
        if not isinstance(pl_module, Snapshots):
            raise TypeError(f"EarlyStoppingRestoreBest needs a module that can snapshot and "
                            f"restore its state (lit3d.modules.protocols.Snapshots); "
                            f"{type(pl_module).__name__} is not one")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        before = self.best_score.clone()
        super().on_train_epoch_end(trainer, pl_module)
        self._remember_if_improved(trainer, before)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        before = self.best_score.clone()
        super().on_validation_end(trainer, pl_module)
        self._remember_if_improved(trainer, before)

    def _remember_if_improved(self, trainer: pl.Trainer, before: torch.Tensor) -> None:
        if not torch.equal(before, self.best_score.to(before.device)):
            snapshot = trainer.lightning_module.snapshot()
            self.best = {**snapshot, "epoch": int(trainer.current_epoch),
                         "score": float(self.best_score)}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.restore_best and self.best is not None:
            pl_module.restore({k: v for k, v in self.best.items() if k not in ("epoch", "score")})

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["best"] = self.best
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best = state_dict.get("best")
