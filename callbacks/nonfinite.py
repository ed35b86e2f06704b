"""``SkipNonFinite``: a NaN/Inf loss or gradient skips the step instead of poisoning the mesh.

A non-finite loss (seen in ``on_before_backward``) or gradient (seen in
``on_before_optimizer_step``, after the gradients are reduced across ranks) removes the
gradients of every parameter the optimizer holds (``p.grad = None``), so ``Adam`` /
``UniformAdam`` leave those parameters *and their moments* untouched: the step did not happen.
Each skip warns once with the step number. After ``max_consecutive`` skips in a row the run
stops (``trainer.should_stop``): the mesh is the last good one, and the fit's artifacts
(``mesh.ply``, ``metrics.json``, the last checkpoint) are written as usual; the command line
then exits with status 3 and says so (:func:`lit3d.cli.main`).

Under DDP the decision is taken jointly (a step is skipped on every rank if any rank saw a
non-finite value), so the ranks' meshes never diverge.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor


class SkipNonFinite(pl.Callback):
    """Skip steps with a non-finite loss or gradient; stop after ``max_consecutive`` in a row.

    Args:
        max_consecutive: consecutive skipped steps that stop the run (K >= 1).

    Attributes:
        skipped: total skipped steps; ``consecutive``: the current run of skips;
        ``stopped``: whether this callback stopped the run.
    """

    def __init__(self, max_consecutive: int = 10):
        if int(max_consecutive) < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = int(max_consecutive)
        self.skipped = 0
        self.consecutive = 0
        self.stopped = False
        self._bad_loss = False

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._bad_loss = False

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           loss: Tensor) -> None:
        self._bad_loss = not bool(torch.isfinite(loss.detach()).all())

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        bad_grad = any(p.grad is not None and not bool(torch.isfinite(p.grad).all())
                       for p in params)
        bad = self._bad_loss or bad_grad
        bad = bool(trainer.strategy.reduce_boolean_decision(bad, all=False))
        if not bad:
            self.consecutive = 0
            return
        for p in params:
            p.grad = None
        self.skipped += 1
        self.consecutive += 1
        what = "loss" if self._bad_loss else "gradient"
        warnings.warn(f"non-finite {what} at step {trainer.global_step}: step skipped "
                      f"({self.consecutive} in a row, stop at {self.max_consecutive})",
                      stacklevel=1)
        if self.consecutive >= self.max_consecutive:
            self.stopped = True
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.skipped:
            pl_module.log("train/skipped_steps", float(self.skipped), rank_zero_only=True)

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
        self.consecutive = int(state_dict.get("consecutive", 0))
