"""Command line: ``python -m lit3d fit|validate|test|predict --config FILE`` (LightningCLI).

Model and data are given by ``class_path`` in the config (``model.class_path: lit3d.modules.MEI3D``)
so every optimization of lit3d runs through the same entry point; ``--print_config`` prints the
resolved configuration. On top of Lightning's CLI:

- every fit gets :class:`callbacks.FitArtifacts` (final mesh, render, curves, ``metrics.json``),
  :class:`callbacks.LastCheckpoint` (``last.ckpt`` every epoch and on SIGTERM/SIGINT),
  :class:`callbacks.SkipNonFinite` and :class:`callbacks.LogMedia` (renders and mesh to W&B,
  when a W&B logger is attached) unless the config lists its own;
- checkpoint callbacks without ``dirpath`` save into the run's own ``checkpoints`` folder, and
  ``fit --ckpt_path last`` resumes from the newest ``last.ckpt`` of the config's earlier runs;
- the resolved ``model`` and ``data`` config is stored in every checkpoint, and
  ``fit --ckpt_path PATH|last`` refuses a checkpoint written by another config, deciding
  difference first (Lightning's CLI would instead replace the given options by the
  checkpoint's hyperparameters);
- ``--trainer.default_root_dir D`` puts relative logger ``save_dir``s under ``D``;
  ``--callbacks.<Class>.<argument> VALUE`` sets an argument of a listed callback;
- the libraries' informational output is off (:mod:`lit3d.console`);
- bad input (missing or broken mesh, unknown model, negative λ, wrong checkpoint, ...) is one
  line on stderr, ``lit3d fit: error: ...``, exit status 2, nothing written to the log dir;
  ``LIT3D_TRACEBACK=1`` shows the traceback. A run stopped by ``SkipNonFinite`` exits with 3,
  one stopped by SIGTERM with 143.
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
from lightning.pytorch.callbacks import (
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException

import lit3d.data  # noqa: F401  (registers the datamodules for class_path short names)
import lit3d.modules  # noqa: F401
from callbacks import FitArtifacts, LastCheckpoint, LogMedia, SkipNonFinite
from lit3d.console import info, quiet
from lit3d.errors import CheckpointMismatchError, InputError

#: Exit status of bad input, and of a run stopped by consecutive non-finite steps.
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
#: Exit status of a fit stopped by SIGTERM (128 + 15, as the shell reports a killed process).
EXIT_SIGTERM = 143
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


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       where: tuple[str, str] = ("in the checkpoint", "now")) -> list[str]:
    """``key: saved <where[0]>, current <where[1]>`` for every leaf that differs between two
    identities, the deciding ones first: another module, another class (response model,
    renderer, datamodule, ...), then the unit (the response model's settings, ``neuron``), the
    renderer, and the rest by key."""
    a, b = _flatten(saved), _flatten(current)
    missing = object()

    def rank(key: str) -> tuple:
        tiers = (key == "model.class_path", key.endswith("class_path"),
                 key.startswith(("model.init_args.response_model", "model.init_args.neuron")),
                 key.startswith("model.init_args.renderer"), True)
        return tiers.index(True), key.count("."), key

    keys = sorted((k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing)),
                  key=rank)
    return [f"{key}: {a.get(key, missing)!r} {where[0]}, {b.get(key, missing)!r} {where[1]}"
            .replace(repr(missing), "(absent)") for key in keys]


def summarize_differences(differences: list[str], shown: int = 3) -> str:
    """The first ``shown`` differences (only the first when it is another module: the rest
    follows from it) and how many more there are."""
    if differences and differences[0].startswith("model.class_path:"):
        shown = 1
    more = len(differences) - shown
    return "; ".join(differences[:shown]) + (f"; and {more} more" if more > 0 else "")


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
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by another config "
                f"({summarize_differences(differences)}). Use the config that wrote it, or "
                "start a new run without --ckpt_path")
    elif module is not None:
        expected = {k for k in module.state_dict() if not k.startswith("model.")}
        found = {k for k in checkpoint["state_dict"] if not k.startswith("model.")}
        if expected != found:
            raise CheckpointMismatchError(
                f"checkpoint {path} does not fit {type(module).__name__}: missing "
                f"{sorted(expected - found)[:5]}, unexpected {sorted(found - expected)[:5]}")


def last_checkpoint(trainer: pl.Trainer) -> str | None:
    """The newest ``last*.ckpt`` of this config's earlier runs: in the ``checkpoints`` folder
    of every run (``<save_dir>/<name>/version_*/``) of the trainer's first logger, in the
    ``<save_dir>/<name>/checkpoints`` folder of earlier lit3d versions, and in the folders of
    the trainer's checkpoint callbacks."""
    folders = [Path(c.dirpath) for c in trainer.checkpoint_callbacks
               if isinstance(c, (ModelCheckpoint, LastCheckpoint)) and c.dirpath]
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is not None and logger.save_dir is not None:
        name = Path(logger.save_dir) / str(logger.name or "")
        folders += [name / "checkpoints", *name.glob("version_*/checkpoints")]
    found = {p for folder in folders if folder.is_dir()
             for p in folder.glob("last*.ckpt") if p.is_file()}
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


def _loggers(logger: Any) -> list[Any]:
    if isinstance(logger, (list, tuple)):
        return [item for entry in logger for item in _loggers(entry)]
    return [logger] if hasattr(logger, "init_args") else []


def reroot_loggers(trainer: Any) -> None:
    """With ``--trainer.default_root_dir D`` given, a logger whose ``save_dir`` is relative
    (the shipped configs' ``runs``) writes under ``D`` (``D/runs/<name>/version_<n>``), so
    one option moves everything a run writes."""
    root = trainer.get("default_root_dir")
    if not root:
        return
    for logger in _loggers(trainer.get("logger")):
        save_dir = logger.init_args.get("save_dir") if logger.init_args else None
        if save_dir is not None and not Path(str(save_dir)).is_absolute():
            logger.init_args.save_dir = str(Path(root) / str(save_dir))


#: ``--callbacks.<Class>.<argument> VALUE`` options taken off the command line by :func:`main`.
CALLBACK_OPTION = "--callbacks."


def split_callback_overrides(args: list[str]) -> tuple[list[str], list[tuple[str, str, Any]]]:
    """Takes ``--callbacks.<Class>.<argument> VALUE`` (or ``=VALUE``) options off ``args``:
    ``(the other args, [(class name, argument, value parsed as YAML)])``. They set an argument
    of a callback the config lists (e.g. ``--callbacks.Remesh.epochs "[5, 25]"``), which
    Lightning's own ``--trainer.callbacks`` options cannot do for one entry of the list."""
    import yaml

    rest, overrides = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if isinstance(arg, str) and arg.startswith(CALLBACK_OPTION):
            key, _, value = arg[len(CALLBACK_OPTION):].partition("=")
            if not _:
                if i + 1 >= len(args):
                    raise InputError(f"{arg} needs a value")
                value, i = args[i + 1], i + 1
            name, _, argument = key.partition(".")
            if not name or not argument:
                raise InputError(f"bad option {arg}: use --callbacks.<Class>.<argument> VALUE")
            overrides.append((name, argument, yaml.safe_load(value)))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def apply_callback_overrides(trainer: Any, overrides: list[tuple[str, str, Any]]) -> None:
    """Sets each ``(class name, argument, value)`` on the callbacks of the config whose class
    has that name; one the config does not list is bad input."""
    from jsonargparse import Namespace

    callbacks = trainer.get("callbacks") or []
    for name, argument, value in overrides:
        matches = [c for c in callbacks if hasattr(c, "class_path")
                   and str(c.class_path).rsplit(".", 1)[-1] == name]
        if not matches:
            listed = sorted(str(c.class_path).rsplit(".", 1)[-1] for c in callbacks
                            if hasattr(c, "class_path"))
            raise InputError(f"--callbacks.{name}.{argument}: the config lists no {name} "
                             f"callback (it lists {', '.join(listed) or 'none'})")
        for callback in matches:
            if callback.init_args is None:
                callback.init_args = Namespace()
            callback.init_args[argument] = value


class Lit3DCLI(LightningCLI):
    """LightningCLI with lit3d's defaults (see the module docstring). It overrides private
    LightningCLI methods, listed in :data:`lit3d.compat.CLI_HOOKS`."""

    phase = "parse"  # "parse" (config, objects) -> "run" (the subcommand)
    callback_overrides: list[tuple[str, str, Any]] = []

    def _parse_ckpt_path(self) -> None:
        """Lightning's CLI overwrites the parsed config with the hyperparameters stored in
        ``--ckpt_path``'s checkpoint, silently undoing the user's options; lit3d keeps the
        config as given and refuses a checkpoint whose config differs (:meth:`before_fit`)."""

    def before_instantiate_classes(self) -> None:
        Lit3DCLI.phase = "instantiate"
        config = self.config[self.subcommand] if self.subcommand else self.config
        reroot_loggers(config.trainer)
        apply_callback_overrides(config.trainer, Lit3DCLI.callback_overrides)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> pl.Trainer:
        if config.get("enable_checkpointing") is False and config.get("callbacks"):
            # The config's checkpoint callbacks go with checkpointing (Lightning refuses both).
            config["callbacks"] = [c for c in config["callbacks"]
                                   if not isinstance(c, ModelCheckpoint)]
        present = {type(c) for c in [*(config.get("callbacks") or []), *callbacks]}
        defaults = [FitArtifacts, SkipNonFinite, LogMedia]
        if self.subcommand == "fit" and config.get("enable_checkpointing") is not False:
            defaults.append(LastCheckpoint)
        for default in defaults:
            if not any(issubclass(t, default) for t in present):
                callbacks.append(default())
        # Lightning's plain summary and progress bar, also where `rich` is installed (Lightning
        # would then print a rich table past lit3d's quiet logging, and change the bar).
        if config.get("enable_model_summary") is not False and \
                not any(issubclass(t, ModelSummary) for t in present):
            callbacks.append(ModelSummary())
        if config.get("enable_progress_bar") is not False and \
                not any(issubclass(t, ProgressBar) for t in present):
            callbacks.append(TQDMProgressBar())
        return super()._instantiate_trainer(config, callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        Lit3DCLI.phase = "run"
        super()._run_subcommand(subcommand)

    def _checkpoint_folders(self) -> None:
        """Checkpoint callbacks without a ``dirpath`` save into the run's own
        ``checkpoints`` folder (``<log dir>/checkpoints``)."""
        run = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        for callback in self.trainer.checkpoint_callbacks:
            if isinstance(callback, (ModelCheckpoint, LastCheckpoint)) and \
                    callback.dirpath is None:
                callback.dirpath = str(run / "checkpoints")

    def before_fit(self) -> None:
        self._checkpoint_folders()
        arguments = self.config_init[self.subcommand]
        ckpt_path = arguments.get("ckpt_path")
        if ckpt_path == "last":
            ckpt_path = last_checkpoint(self.trainer)
            logger = self.trainer.loggers[0] if self.trainer.loggers else None
            where = (Path(logger.save_dir) / str(logger.name) if logger is not None
                     and logger.save_dir else Path(self.trainer.default_root_dir))
            if ckpt_path is None:
                info(f"--ckpt_path last: no last.ckpt of an earlier run in {where}: starting "
                     "a new run")
            else:
                info(f"resuming from {ckpt_path}")
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
    quiet()
    try:
        if args is None:
            argv, Lit3DCLI.callback_overrides = split_callback_overrides(sys.argv[1:])
            sys.argv[1:] = argv
        elif isinstance(args, list):
            args, Lit3DCLI.callback_overrides = split_callback_overrides(args)
        else:
            Lit3DCLI.callback_overrides = []
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
    except SIGTERMException:
        raise SystemExit(EXIT_SIGTERM) from None
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


def _without_fit_options(args: list[str]) -> list[str]:
    """``args`` with every ``--config FILE`` that holds options only ``fit`` takes (a run's
    ``config.yaml`` has ``Trainer.fit``'s ``ckpt_path`` and ``weights_only``) replaced by that
    config's text without them."""
    import inspect

    import yaml

    fit_only = set(inspect.signature(pl.Trainer.fit).parameters) - {
        "self", "model", "train_dataloaders", "val_dataloaders", "datamodule"}
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--config" and Path(out[i + 1]).is_file():
            config = yaml.safe_load(Path(out[i + 1]).read_text())
            if isinstance(config, dict) and fit_only & set(config):
                for key in fit_only:
                    config.pop(key, None)
                out[i + 1] = yaml.safe_dump(config, sort_keys=False)
    return out


def build(args: list[str]) -> Lit3DCLI:
    """The model, datamodule and trainer of a config (command-line style ``args``, e.g.
    ``["--config", "runs/x/version_0/config.yaml", "--trainer.logger", "false"]``) without
    running anything: what the analysis commands use. A run's ``config.yaml`` works as it is.
    Bad input raises :class:`InputError`."""
    argv = sys.argv
    sys.argv = argv[:1]  # the config is given here, not on this process's command line
    try:
        return main(_without_fit_options(args), run=False, handle_errors=False)
    except Exception as error:
        reported = input_error(error, Lit3DCLI.phase)
        if reported is None or os.environ.get("LIT3D_TRACEBACK"):
            raise
        if isinstance(reported, InputError):
            raise reported from error
        raise InputError(str(reported).strip() or type(reported).__name__) from error
    finally:
        sys.argv = argv
