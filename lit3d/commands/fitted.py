"""What the commands that analyse a fitted 3D-MEI share (``tune``, ``export``, ``pixel-mei``):
their common options, the stimulus they load (:func:`load_fitted`) and the angle grids they
parse. Grids are ``start:stop:step`` in degrees (stop exclusive) or comma-separated values;
write a grid that starts with a minus sign as ``--azimuths=-90:91:15``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lit3d.commands import open_analysed
from lit3d.errors import InputError


def parse_grid(text: str) -> torch.Tensor:
    """``"start:stop:step"`` (stop exclusive) or ``"a,b,c"`` -> (N,) float tensor of degrees."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop <= start:
                raise ValueError
            values = torch.arange(start, stop, step)
        else:
            values = torch.tensor([float(x) for x in text.split(",")])
    except ValueError:
        raise InputError(f"bad angle grid {text!r}: use start:stop:step (step > 0, stop > "
                         "start) or comma-separated degrees") from None
    if values.numel() == 0:
        raise InputError(f"angle grid {text!r} is empty")
    return values.float()


def parse_pairs(text: str, option: str) -> list[tuple[float, float]]:
    """``"az,el;az,el"`` -> [(az, el), ...] in degrees."""
    try:
        pairs = [tuple(float(x) for x in item.split(",")) for item in text.split(";") if item]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 for p in pairs):
        raise InputError(f"bad {option} {text!r}: use 'azimuth,elevation;azimuth,elevation' "
                         "in degrees")
    return pairs


def fitted_parser(command: str, description: str, out: str) -> argparse.ArgumentParser:
    """The parser of a subcommand that analyses a fitted 3D-MEI (:func:`load_fitted`), with
    its common options; ``out`` is the default output folder."""
    parser = argparse.ArgumentParser(prog=f"lit3d {command}", description=description)
    parser.add_argument("--run", help="a fit's run directory (runs/<name>/version_<n>): its "
                        "config and final mesh")
    parser.add_argument("--config", help="a config (YAML), with --mesh or --ckpt_path for the "
                        "stimulus (default: the config's initial mesh)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--mesh", help="mesh file of the stimulus (.ply/.obj/.glb)")
    source.add_argument("--ckpt_path", help="checkpoint of the config's module")
    parser.add_argument("--unit", type=int, default=None, help="the unit (neuron index) of a "
                        "population run or config (default: its first)")
    parser.add_argument("--out", default=out, help=f"output folder (default: {out})")
    parser.add_argument("--spp", type=int, default=None, help="samples per pixel (default: "
                        "the module's eval_spp)")
    parser.add_argument("--seed", type=int, default=0, help="render seed")
    return parser


@dataclass
class Fitted:
    """A fitted 3D-MEI opened for analysis (:func:`open_fitted`).

    Attributes:
        whole: the config's module (:class:`~lit3d.modules.MEI3D` or a population).
        units: the unit (neuron) indices it fits, in order.
        view: (1,) the config's first view; spp: ``--spp`` or the module's ``eval_spp``.
        run: the run directory, if one was given.
    """

    whole: Any
    units: list[int]
    view: Any
    spp: int
    run: Any
    mesh: Path | None
    from_checkpoint: bool

    def module(self, unit: int):
        """The :class:`~lit3d.modules.MEI3D` of ``unit``."""
        from lit3d.modules import MEI3DPopulation

        if unit not in self.units:
            raise InputError(f"--unit {unit}: the {'run' if self.run else 'config'} has "
                             f"units {self.units}")
        if isinstance(self.whole, MEI3DPopulation):
            return self.whole.units[self.units.index(unit)]
        return self.whole

    def stimulus(self, unit: int | None = None) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """``(module, vertices (V, 3), faces (F, 3))`` of ``unit`` (default: the first): the
        run's final mesh of the unit, else ``--mesh``, else the module's current mesh
        (checkpoint or initial)."""
        from lit3d.geometry.io import load_mesh

        unit = self.units[0] if unit is None else int(unit)
        module = self.module(unit)
        mesh = self.mesh
        if self.run is not None and not self.from_checkpoint:
            meshes = self.run.meshes()
            mesh = meshes.get("mesh", meshes.get(f"neuron_{unit}"))
            if mesh is None:
                raise InputError(f"run {self.run.path} has no final mesh of unit {unit} "
                                 f"(mesh_neuron_{unit}.ply)")
        with torch.no_grad():
            if mesh is not None:
                if not mesh.is_file():
                    raise InputError(f"mesh file not found: {mesh}")
                vertices, faces = load_mesh(mesh)
            else:
                vertices, faces = module.vertices().detach(), module.faces
        return module, vertices.float(), faces.long()


def check_sources(args: argparse.Namespace) -> None:
    """Raises :class:`InputError` if ``--run`` comes with another source of the stimulus."""
    if args.run and (args.config or args.mesh or args.ckpt_path):
        raise InputError("--run takes the run's own config and mesh: leave out --config, "
                         "--mesh and --ckpt_path")


def open_fitted(args: argparse.Namespace, opened: tuple | None = None) -> Fitted:
    """The 3D-MEI that ``args`` (:func:`fitted_parser`'s options) name, every unit of it.

    With ``--run`` the run's own config and final meshes (``mesh.ply``, or each unit's
    ``mesh_neuron_<n>.ply``; else its ``checkpoints/last.ckpt``). With ``--config`` the
    stimulus is ``--mesh`` (refused if the file sits in a run directory whose config differs),
    ``--ckpt_path`` (which must come from the same config; loaded strictly) or the config's
    initial mesh. ``opened``: ``(run, cli)`` of :func:`~lit3d.commands.open_analysed` for
    these ``args``, if the caller has them already."""
    from lit3d.cli import config_differences, config_identity, summarize_differences
    from lit3d.data.views import overhead_views
    from lit3d.modules import MEI3D, MEI3DPopulation
    from lit3d.runs import Run

    if args.spp is not None and args.spp < 1:
        raise InputError(f"--spp must be >= 1, got {args.spp}")
    check_sources(args)
    run, cli = opened or open_analysed(args.run, args.config)
    whole = cli.model
    identity = config_identity(cli.config)
    population = isinstance(whole, MEI3DPopulation)
    if not population and not isinstance(whole, MEI3D):
        raise InputError(f"{type(whole).__name__} has no response model and renderer to "
                         "analyse; these commands take a 3D-MEI config or run")
    units = list(whole.neurons) if population else [int(whole.hparams.neuron)]
    checkpoint = Path(args.ckpt_path) if args.ckpt_path else None
    mesh = Path(args.mesh) if args.mesh else None
    if run and not run.meshes():
        checkpoint = run.checkpoint()
        if checkpoint is None:
            raise InputError(f"run {run.path} has no final mesh (mesh.ply or "
                             "mesh_neuron_<n>.ply) and no checkpoints/last.ckpt: did the fit "
                             "start?")
    elif mesh is not None:
        home = Run.containing(mesh)
        if home is not None:
            theirs = config_identity(open_analysed(str(home.path), None)[1].config)
            differences = config_differences(theirs, identity, ("in its run", "in --config"))
            if differences:
                raise InputError(
                    f"{mesh} was fitted with another config ({summarize_differences(differences)}"
                    f"); analyse it with --run {home.path}")
    if checkpoint is not None:
        load_checkpoint(whole, checkpoint, identity)
    views = getattr(cli.datamodule, "views", None)
    view = (views if views is not None else overhead_views())[:1]
    first = whole.units[0] if population else whole
    spp = args.spp if args.spp is not None else first.hparams.eval_spp
    return Fitted(whole, units, view, int(spp), run, mesh, checkpoint is not None)


def load_fitted(args: argparse.Namespace):
    """``(module, vertices, faces, view, spp)``: the unit ``--unit`` (default: the first) of
    :func:`open_fitted`'s 3D-MEI and its stimulus; ``module`` is the unit's
    :class:`~lit3d.modules.MEI3D`, ``view`` the config's first view, ``spp`` ``--spp`` or its
    ``eval_spp``."""
    fitted = open_fitted(args)
    module, vertices, faces = fitted.stimulus(args.unit)
    return module, vertices, faces, fitted.view, fitted.spp


def load_checkpoint(module: torch.nn.Module, path: Path, identity: dict[str, Any]) -> None:
    """Loads ``path`` into ``module`` strictly, after the check ``fit --ckpt_path`` does (the
    checkpoint must come from the same config)."""
    from lit3d.cli import check_checkpoint

    check_checkpoint(path, identity, module)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    module.onload_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"checkpoint {path} does not fit {type(module).__name__}: "
                         f"{first}") from error
