"""Test helpers shared by several test files (import as ``from helpers import ...``)."""

import lightning.pytorch as pl
import torch
from torch import nn


class TinyNet(nn.Module):
    """A random-init stand-in for a zoo network: (B, 3, H, W) -> (B, 32)."""

    name = "tiny"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 5, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, images):
        return self.pool(torch.relu(self.conv(images))).flatten(1)


def trainer(tmp_path, callbacks=(), **kwargs) -> pl.Trainer:
    """A quiet CPU trainer (no logger, checkpoints, progress bar or sanity check)."""
    options = dict(accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path, callbacks=list(callbacks), num_sanity_val_steps=0)
    options.update(kwargs)
    return pl.Trainer(**options)


class KillAt(pl.Callback):
    """Kills its own process with SIGKILL (no clean-up, no checkpoint: a crash) when batch
    ``batch`` of epoch ``epoch`` starts. For command-line tests: ``--trainer.callbacks+=
    helpers.KillAt --trainer.callbacks.init_args.epoch K`` with ``tests`` on ``PYTHONPATH``."""

    def __init__(self, epoch: int, batch: int = 1):
        self.epoch, self.batch = int(epoch), int(batch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        import os
        import signal

        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)
