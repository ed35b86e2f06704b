"""``LastCheckpoint``: ``last.ckpt`` at the end of every training epoch and when the run is
stopped, so a crash or a kill loses at most the epoch in progress.

Lightning's ``ModelCheckpoint(save_last=True, monitor=...)`` writes ``last.ckpt`` only when it
saves a monitored checkpoint, i.e. after a validation that improved: with validation every few
epochs (or none yet) a long run has no recent checkpoint. This callback writes
``<dirpath>/last.ckpt`` after every training epoch, after the epoch's validation and after the
other callbacks' epoch-end work (a remesh, early stopping's bookkeeping: it is a ``Checkpoint``,
which Lightning runs last), and, on SIGTERM or Ctrl-C (SIGINT), once more before the process
exits. The file is written to a temporary name and renamed, so a kill during the write leaves
the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit3d.console import info

LAST = "last.ckpt"


class LastCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` every training epoch and on SIGTERM/SIGINT.

    Args:
        dirpath: the folder of ``last.ckpt``; ``None``: set by the command line to the run's
            checkpoint folder (``<save_dir>/<name>/checkpoints``), else
            ``<default_root_dir>/checkpoints``.
    """

    def __init__(self, dirpath: str | Path | None = None):
        self.dirpath = None if dirpath is None else str(dirpath)
        self.saved_epochs: list[int] = []

    @property
    def path(self) -> Path:
        return Path(self.dirpath or ".") / LAST

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")

    def _save(self, trainer: pl.Trainer) -> None:
        path = self.path
        temporary = path.with_name(f".{path.name}.tmp")
        trainer.save_checkpoint(temporary)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, path)
        trainer.strategy.barrier("lit3d_last_checkpoint")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        self._save(trainer)
        self.saved_epochs.append(int(trainer.current_epoch))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self._save(trainer)
            what = "SIGTERM" if isinstance(exception, SIGTERMException) else "Ctrl-C (SIGINT)"
            info(f"stopped by {what} in epoch {trainer.current_epoch} at step "
                 f"{trainer.global_step}: {self.path} written; resume with --ckpt_path "
                 f"{self.path} (or last)")

    def state_dict(self) -> dict:
        return {"dirpath": self.dirpath}
