"""The analysis subcommands, ``python -m lit3d <command>`` (:data:`COMMANDS`),
one module each (its ``parser`` and ``run``), dispatched by :func:`dispatch`.

``tune``, ``export`` and ``pixel-mei`` analyse a fitted 3D-MEI; ``rbf-validate`` fits the RBF
deformation to known shapes; ``report`` is the metamer report of an MRD shape config;
``gradcheck`` compares the renderer's vertex gradient of a config's loss with finite differences.

    python -m lit3d tune --run runs/mei3d_simple_cell/version_0 --out tuning/
    python -m lit3d export --run runs/mei3d_simple_cell/version_0 --out stimulus/ \\
        --image_size 512 --poses "0,0;30,0" --lights "45,75;135,45"

The commands that analyse a fitted 3D-MEI take a run directory (``--run``), which gives
everything: the response model and unit, the renderer, the base view and the final mesh, exactly
as fitted. Other stimuli take a config (``--config``) and a mesh file (``--mesh``), a checkpoint
of the config's module (``--ckpt_path``), or the config's initial mesh
(:mod:`lit3d.commands.fitted`). Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

from lit3d.errors import InputError

#: Command name -> the module that runs it (imported when the command runs).
COMMANDS = {"tune": "lit3d.commands.tune", "export": "lit3d.commands.export",
            "pixel-mei": "lit3d.commands.pixel_mei",
            "rbf-validate": "lit3d.commands.rbf_validate", "report": "lit3d.commands.report",
            "gradcheck": "lit3d.commands.gradcheck", "explore": "lit3d.commands.explore",
            "atlas": "lit3d.commands.atlas"}


def open_analysed(run_dir: str | None, config: str | None, overrides: list[str] = ()):
    """``(run, cli)``: the run directory ``run_dir`` (a :class:`~lit3d.runs.Run`, else
    ``None``) and what its own config - or the config file ``config`` - builds, with
    ``overrides`` and without a logger, nothing run (:func:`lit3d.cli.build`). Exactly one of
    the two must be given."""
    from lit3d.cli import build
    from lit3d.runs import Run

    if bool(run_dir) == bool(config):
        raise InputError("give a run directory (--run) or a config (--config)")
    run = Run.open(run_dir) if run_dir else None
    cli = build(["--config", str(run.config_file if run else config), "--trainer.logger",
                 "false", *overrides])
    return run, cli


def dispatch(command: str, argv: list[str]) -> None:
    """Entry point of ``python -m lit3d <command>`` for the commands in :data:`COMMANDS`: bad
    input is one line and exit status 2."""
    from lit3d.console import quiet

    quiet()
    try:
        importlib.import_module(COMMANDS[command]).run(argv)
    except (InputError, FileNotFoundError) as error:  # a ValueError elsewhere is a bug
        if os.environ.get("LIT3D_TRACEBACK"):
            raise
        print(f"lit3d {command}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
