"""Command line: ``python -m lit3d fit|validate|test|predict --config FILE`` (LightningCLI).

Model and data are given by ``class_path`` in the config (``model.class_path: lit3d.modules.MEI3D``)
so every optimization of lit3d runs through the same entry point; ``--print_config`` prints the
resolved configuration. On top of Lightning's CLI:

- every fit gets :class:`callbacks.FitArtifacts` (final mesh, render, curves, ``metrics.json``),
  :class:`callbacks.SkipNonFinite` and :class:`callbacks.LogMedia` (renders and mesh to W&B,
  when a W&B logger is attached) unless the config lists its own;
- the resolved ``model`` and ``data`` config is stored in every checkpoint, and
  ``fit --ckpt_path PATH|last`` refuses a checkpoint written by another config (Lightning's
  CLI would instead replace the given options by the checkpoint's hyperparameters);
- a ``ModelCheckpoint`` without ``dirpath`` saves to ``<save_dir>/<name>/checkpoints`` (one
  folder for all versions of a config's runs), so ``--ckpt_path last`` finds the previous run's
  ``last.ckpt`` (Lightning's default, the new version's folder, never has one);
- bad input (missing or broken mesh, unknown model, negative λ, wrong checkpoint, ...) is one
  line on stderr, ``lit3d fit: error: ...``, exit status 2, nothing written to the log dir;
  ``LIT3D_TRACEBACK=1`` shows the traceback. A run stopped by ``SkipNonFinite`` exits with 3.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

import lit3d.data  # noqa: F401  (registers the datamodules for class_path short names)
import lit3d.modules  # noqa: F401
from callbacks import FitArtifacts, LogMedia, SkipNonFinite
from lit3d.errors import CheckpointMismatchError, InputError

#: Exit status of bad input, and of a run stopped by consecutive non-finite steps.
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
#: Config sections that define a run's identity (a checkpoint must come from the same ones).
IDENTITY_KEYS = ("model", "data")
_PACKAGES = tuple(str(Path(__import__(name).__file__).parent) for name in ("lit3d", "callbacks"))


def _plain(value: Any) -> Any:
    """JSON-able copy of a jsonargparse Namespace / dict / list (other objects as strings)."""
    return json.loads(json.dumps(value.as_dict() if hasattr(value, "as_dict") else value,
                                 default=str))


def config_identity(config: Any) -> dict[str, Any]:
    """The ``model`` and ``data`` sections of a resolved config, as plain data."""
    return {key: _plain(config.get(key)) for key in IDENTITY_KEYS}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: saved vs current`` for every leaf that differs between two identities."""
    a, b = _flatten(saved), _flatten(current)
    missing = object()
    return [f"{key}: {a.get(key, missing)!r} in the checkpoint, {b.get(key, missing)!r} now"
            .replace(repr(missing), "(absent)")
            for key in sorted(set(a) | set(b)) if a.get(key, missing) != b.get(key, missing)]


def check_checkpoint(path: str | Path, identity: dict[str, Any] | None,
                     module: pl.LightningModule | None = None) -> None:
    """Raises :class:`InputError` if ``path`` is not a readable checkpoint, and
    :class:`CheckpointMismatchError` if it was written by another config (its stored identity
    differs from ``identity``; for a checkpoint without one, if its state-dict keys differ from
    ``module``'s)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a damaged file
        raise InputError(f"could not read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InputError(f"{path} is not a Lightning checkpoint (no state_dict)")
    saved = checkpoint.get("lit3d_config")
    if saved is not None and identity is not None:
        differences = config_differences(saved, identity)
        if differences:
            shown = "; ".join(differences[:6])
            more = f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by another config ({shown}{more}). Resume "
                "with the config that wrote it, or start a new run without --ckpt_path")
    elif module is not None:
        expected = {k for k in module.state_dict() if not k.startswith("model.")}
        found = {k for k in checkpoint["state_dict"] if not k.startswith("model.")}
        if expected != found:
            raise CheckpointMismatchError(
                f"checkpoint {path} does not fit {type(module).__name__}: missing "
                f"{sorted(expected - found)[:5]}, unexpected {sorted(found - expected)[:5]}")


def last_checkpoint(trainer: pl.Trainer) -> str | None:
    """The newest ``last*.ckpt`` in the folders of the trainer's ``ModelCheckpoint``s."""
    found = []
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            found += [p for p in Path(callback.dirpath).glob("last*.ckpt") if p.is_file()]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


class Lit3DSaveConfig(SaveConfigCallback):
    """Saves ``config.yaml`` to the log dir (Lightning's), also logs the resolved config to
    W&B when a ``WandbLogger`` is attached, and stores the config's identity (``model`` and
    ``data``) in every checkpoint."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                    stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and trainer.is_global_zero:
                logger.experiment.config.update(_plain(self.config), allow_val_change=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint["lit3d_config"] = config_identity(self.config)


class Lit3DCLI(LightningCLI):
    """LightningCLI with lit3d's defaults (see the module docstring)."""

    phase = "parse"  # "parse" (config, objects) -> "run" (the subcommand)

    def _parse_ckpt_path(self) -> None:
        """Lightning's CLI overwrites the parsed config with the hyperparameters stored in
        ``--ckpt_path``'s checkpoint, silently undoing the user's options; lit3d keeps the
        config as given and refuses a checkpoint whose config differs (:meth:`before_fit`)."""

    def before_instantiate_classes(self) -> None:
        Lit3DCLI.phase = "instantiate"

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> pl.Trainer:
        present = {type(c) for c in [*(config.get("callbacks") or []), *callbacks]}
        for default in (FitArtifacts, SkipNonFinite, LogMedia):
            if not any(issubclass(t, default) for t in present):
                callbacks.append(default())
        return super()._instantiate_trainer(config, callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        Lit3DCLI.phase = "run"
        super()._run_subcommand(subcommand)

    def _checkpoint_folders(self) -> None:
        logger = self.trainer.loggers[0] if self.trainer.loggers else None
        for callback in self.trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                root = (Path(logger.save_dir or self.trainer.default_root_dir) / str(logger.name)
                        if logger is not None else Path(self.trainer.default_root_dir))
                callback.dirpath = str(root / "checkpoints")

    def before_fit(self) -> None:
        self._checkpoint_folders()
        arguments = self.config_init[self.subcommand]
        ckpt_path = arguments.get("ckpt_path")
        if ckpt_path == "last":
            ckpt_path = last_checkpoint(self.trainer)
            folders = [c.dirpath for c in self.trainer.checkpoint_callbacks
                       if isinstance(c, ModelCheckpoint)]
            if ckpt_path is None:
                where = folders or "any ModelCheckpoint folder"
                rank_zero_info(f"--ckpt_path last: no last checkpoint in {where}; "
                               "starting a new run")
            else:
                rank_zero_info(f"resuming from {ckpt_path}")
            arguments["ckpt_path"] = ckpt_path
        if ckpt_path not in (None, "best", "hpc") and "://" not in str(ckpt_path):
            check_checkpoint(ckpt_path, config_identity(self.config[self.subcommand]),
                             self.model)

    def after_fit(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, SkipNonFinite) and callback.stopped:
                print(f"lit3d fit: error: stopped after {callback.consecutive} consecutive "
                      f"steps with a non-finite loss or gradient (step "
                      f"{self.trainer.global_step}); the last good mesh is saved in "
                      f"{self.trainer.log_dir}", file=sys.stderr, flush=True)
                raise SystemExit(EXIT_NON_FINITE)


def _raised_by_lit3d(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(_PACKAGES)


def input_error(error: BaseException, phase: str) -> BaseException | None:
    """The exception of ``error``'s chain to report as bad input, or ``None`` for a bug.

    While the config is parsed and its objects built, the innermost ``ValueError``,
    ``OSError``, ``LookupError`` or ``TypeError`` raised in lit3d's own code (else the
    innermost of the chain) counts; during the run, only :class:`InputError`."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if phase == "run":
        return next((e for e in chain if isinstance(e, InputError)), None)
    kinds = (ValueError, OSError, LookupError, TypeError)
    ours = [e for e in chain if isinstance(e, kinds) and _raised_by_lit3d(e)]
    if ours:
        return ours[-1]
    return chain[-1] if isinstance(chain[-1], kinds) else None


def main(args: list[str] | None = None, run: bool = True, handle_errors: bool = True
         ) -> Lit3DCLI:
    """Runs the command line. With ``handle_errors`` (the default), bad input ends the process
    with one line on stderr and exit status 2 (see :func:`input_error`)."""
    Lit3DCLI.phase = "parse"
    try:
        return Lit3DCLI(
            model_class=pl.LightningModule,
            datamodule_class=pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=Lit3DSaveConfig,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            args=args,
            run=run,
            auto_configure_optimizers=False,
        )
    except Exception as error:
        reported = input_error(error, Lit3DCLI.phase) if handle_errors else None
        if reported is None or os.environ.get("LIT3D_TRACEBACK"):
            raise
        command = (args if args is not None else sys.argv[1:])[:1]
        name = f"lit3d {command[0]}" if command and not command[0].startswith("-") else "lit3d"
        message = str(reported).strip() or type(reported).__name__
        if isinstance(reported, KeyError):
            message = f"missing key {message}"
        print(f"{name}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_INPUT) from None


#: Subcommands besides LightningCLI's fit/validate/test/predict (:mod:`lit3d.analysis.commands`).
ANALYSES = ("tune", "export", "pixel-mei", "rbf-validate", "report")


def entry_point() -> None:
    """``python -m lit3d`` and the ``lit3d`` console script: the analysis subcommands
    (:data:`ANALYSES`), else the Lightning CLI (:func:`main`)."""
    if sys.argv[1:2] and sys.argv[1] in ANALYSES:
        from lit3d.analysis.commands import run

        run(sys.argv[1], sys.argv[2:])
    else:
        main()
