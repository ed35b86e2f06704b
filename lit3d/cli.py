"""Command line: ``python -m lit3d fit|validate|test|predict --config FILE`` (LightningCLI).

Model and data are given by ``class_path`` in the config (``model.class_path: lit3d.modules.MEI3D``)
so every optimization of lit3d runs through the same entry point; ``--print_config`` prints the
resolved configuration. Every fit also gets :class:`callbacks.FitArtifacts` (final mesh, render,
curves, ``metrics.json``).
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

import lit3d.data  # noqa: F401  (registers the datamodules for class_path short names)
import lit3d.modules  # noqa: F401
from callbacks import FitArtifacts


class Lit3DCLI(LightningCLI):
    """LightningCLI with lit3d's defaults."""


def main(args: list[str] | None = None, run: bool = True) -> Lit3DCLI:
    return Lit3DCLI(
        model_class=pl.LightningModule,
        datamodule_class=pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [FitArtifacts()]},
        seed_everything_default=0,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )
