"""The analysis subcommands: ``python -m lit3d tune|export|pixel-mei|rbf-validate|report``.

``tune``, ``export`` and ``pixel-mei`` analyse a fitted 3D-MEI; ``rbf-validate`` fits the RBF
deformation to known shapes; ``report`` is the metamer report of an MRD shape config.

    python -m lit3d tune --run runs/mei3d_simple_cell/version_0 --out tuning/
    python -m lit3d export --run runs/mei3d_simple_cell/version_0 --out stimulus/ \\
        --image_size 512 --poses "0,0;30,0" --lights "45,75;135,45"

A run directory (``--run``) gives everything: the response model and unit, the renderer, the
base view and the final mesh, exactly as fitted. Other stimuli take a config (``--config``) and
a mesh file (``--mesh``), a checkpoint of the config's module (``--ckpt_path``), or the
config's initial mesh. ``tune`` writes ``pose.csv``, ``pose.png`` (heatmap), ``pose_contact.png``,
``light.csv``, ``light.png`` (polar heatmap), ``light_contact.png`` into ``--out`` and prints
each sweep's peak. ``export`` writes the stimulus folder of :mod:`lit3d.analysis.export`;
``pixel-mei``, ``rbf-validate`` and ``report`` are described in their functions below.
Grids are ``start:stop:step`` in degrees (stop exclusive) or comma-separated values; write a
grid that starts with a minus sign as ``--azimuths=-90:91:15``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


def _fitted_parser(command: str, description: str, out: str) -> argparse.ArgumentParser:
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


def tune_parser() -> argparse.ArgumentParser:
    parser = _fitted_parser("tune", "Pose and light tuning sweeps of a fitted 3D-MEI "
                            "(lit3d.analysis.tuning).", "tuning")
    parser.add_argument("--azimuths", default="-90:91:15", help="pose azimuths (deg)")
    parser.add_argument("--elevations", default="-60:61:15", help="pose elevations (deg)")
    parser.add_argument("--light_azimuths", default="0:360:30", help="light azimuths (deg)")
    parser.add_argument("--light_elevations", default="10:91:20",
                        help="light elevations above the camera's image plane (deg)")
    parser.add_argument("--chunk", type=int, default=16, help="views per renderer call")
    return parser


def export_parser() -> argparse.ArgumentParser:
    parser = _fitted_parser("export", "Export a fitted stimulus: meshes, renders, JSON sidecar "
                            "(lit3d.analysis.export).", "stimulus")
    parser.add_argument("--image_size", type=int, default=None,
                        help="render resolution (default: the config's)")
    parser.add_argument("--allow-self-intersections", action="store_true",
                        help="export a mesh that passes through itself (refused otherwise: "
                        "it is not a physical object)")
    parser.add_argument("--poses", default="0,0", help="object poses 'az,el;az,el' (deg)")
    parser.add_argument("--lights", default=None, help="light directions 'az,el;az,el' on the "
                        "camera's forward hemisphere (deg; default: the config's light)")
    return parser


def load_fitted(args: argparse.Namespace):
    """``(module, vertices, faces, view, spp)``: the 3D-MEI unit to analyse and its stimulus.

    With ``--run`` the run's own config and final mesh (``mesh.ply``, or the unit's
    ``mesh_neuron_<n>.ply``; else its ``checkpoints/last.ckpt``). With ``--config`` the
    stimulus is ``--mesh`` (refused if the file sits in a run directory whose config differs),
    ``--ckpt_path`` (which must come from the same config; loaded strictly) or the config's
    initial mesh. ``module`` is the unit's :class:`~lit3d.modules.MEI3D` (for a population,
    ``--unit``'s), ``view`` the config's first view, ``spp`` ``--spp`` or its ``eval_spp``."""
    from lit3d.cli import build, config_differences, config_identity, summarize_differences
    from lit3d.data.views import overhead_views
    from lit3d.geometry.io import load_mesh
    from lit3d.runs import Run

    if args.spp is not None and args.spp < 1:
        raise InputError(f"--spp must be >= 1, got {args.spp}")
    if args.run and (args.config or args.mesh or args.ckpt_path):
        raise InputError("--run takes the run's own config and mesh: leave out --config, "
                         "--mesh and --ckpt_path")
    if not args.run and not args.config:
        raise InputError("give a run directory (--run) or a config (--config)")
    run = Run.open(args.run) if args.run else None
    cli = build(["--config", str(run.config_file if run else args.config),
                 "--trainer.logger", "false"])
    whole = cli.model
    identity = config_identity(cli.config)
    if not hasattr(whole, "response_model") or not hasattr(whole, "renderer"):
        raise InputError(f"{type(whole).__name__} has no response model and renderer to "
                         "analyse; these commands take a 3D-MEI config or run")
    units = list(getattr(whole, "neurons", [int(whole.hparams.neuron)]))
    unit = units[0] if args.unit is None else int(args.unit)
    if unit not in units:
        raise InputError(f"--unit {unit}: the {'run' if run else 'config'} has units {units}")
    module = whole.units[units.index(unit)] if hasattr(whole, "units") else whole
    checkpoint = Path(args.ckpt_path) if args.ckpt_path else None
    mesh = Path(args.mesh) if args.mesh else None
    if run:
        meshes = run.meshes()
        name = "mesh" if "mesh" in meshes else f"neuron_{unit}"
        mesh = meshes.get(name)
        if mesh is None:
            checkpoint = run.checkpoint()
            if checkpoint is None:
                raise InputError(f"run {run.path} has no final mesh ({name}.ply) and no "
                                 "checkpoints/last.ckpt: did the fit start?")
    elif mesh is not None:
        home = Run.containing(mesh)
        if home is not None:
            theirs = config_identity(build(["--config", str(home.config_file),
                                            "--trainer.logger", "false"]).config)
            differences = config_differences(theirs, identity, ("in its run", "in --config"))
            if differences:
                raise InputError(
                    f"{mesh} was fitted with another config ({summarize_differences(differences)}"
                    f"); analyse it with --run {home.path}")
    if checkpoint is not None:
        _load_checkpoint(whole, checkpoint, identity)
    with torch.no_grad():
        if mesh is not None:
            if not mesh.is_file():
                raise InputError(f"mesh file not found: {mesh}")
            vertices, faces = load_mesh(mesh)
        else:
            vertices, faces = module.vertices().detach(), module.faces
    views = getattr(cli.datamodule, "views", None)
    view = (views if views is not None else overhead_views())[:1]
    spp = args.spp if args.spp is not None else module.hparams.eval_spp
    return module, vertices.float(), faces.long(), view, spp


def _load_checkpoint(module: torch.nn.Module, path: Path, identity: dict[str, Any]) -> None:
    """Loads ``path`` into ``module`` strictly, after the check ``fit --ckpt_path`` does (the
    checkpoint must come from the same config)."""
    from lit3d.cli import check_checkpoint

    check_checkpoint(path, identity, module)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    module.on_load_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"checkpoint {path} does not fit {type(module).__name__}: "
                         f"{first}") from error


def tune(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    """``lit3d tune``: runs both sweeps; returns ``{"pose": peak, "light": peak}``
    (azimuth, elevation, response)."""
    from lit3d.analysis.tuning import check_light_elevations, light_sweep, pose_sweep

    args = tune_parser().parse_args(argv)
    grids = {name: parse_grid(getattr(args, name)) for name in
             ("azimuths", "elevations", "light_azimuths", "light_elevations")}
    check_light_elevations(grids["light_elevations"])  # before the (slow) model is built
    module, vertices, faces, view, spp = load_fitted(args)
    neuron = int(module.hparams.neuron)
    model = module.response_model.eval()

    def response(images):
        return model(images)[:, neuron]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peaks = {}
    for kind, sweep_fn, az, el in (
            ("pose", pose_sweep, grids["azimuths"], grids["elevations"]),
            ("light", light_sweep, grids["light_azimuths"], grids["light_elevations"])):
        sweep = sweep_fn(module.renderer, response, vertices, faces, view, az, el,
                         seed=args.seed, spp=spp, chunk=args.chunk)
        sweep.write_csv(out / f"{kind}.csv")
        sweep.plot(out / f"{kind}.png")
        sweep.contact_sheet(out / f"{kind}_contact.png")
        peaks[kind] = sweep.peak()
        a, e, r = peaks[kind]
        print(f"{kind}: peak response {r:.4g} at azimuth {a:g}, elevation {e:g}", flush=True)
    print(f"tuning written to {out}", flush=True)
    return peaks


def export(argv: list[str] | None = None) -> Path:
    """``lit3d export``: writes the stimulus folder; returns the sidecar's path."""
    import copy

    from lit3d.analysis.export import export_stimulus
    from lit3d.analysis.tuning import check_light_elevations
    from lit3d.metrics.plausibility import plausibility

    args = export_parser().parse_args(argv)
    poses = parse_pairs(args.poses, "--poses")
    lights = None if args.lights is None else parse_pairs(args.lights, "--lights")
    if lights:
        check_light_elevations([e for _, e in lights])
    module, vertices, faces, view, spp = load_fitted(args)
    rest = module.rest_vertices if module.rest_vertices.shape == vertices.shape else None
    measures = plausibility(vertices, faces, rest, view)
    if measures["self_intersections"] > 0 and not args.allow_self_intersections:
        raise InputError(
            f"the stimulus passes through itself ({measures['self_intersections']:.1%} of its "
            "faces intersect others): not a physical object; --allow-self-intersections "
            "exports it anyway")
    renderer = copy.deepcopy(module.renderer)
    renderer.spp = int(spp)  # the sidecar records the samples the renders used
    if args.image_size is not None:
        if args.image_size < 1:
            raise InputError(f"--image_size must be >= 1, got {args.image_size}")
        renderer.image_size = int(args.image_size)
    neuron = int(module.hparams.neuron)
    model = module.response_model.eval()
    optimum = float(module.optimal_response)
    source = {"config": str(Path(args.run) / "config.yaml") if args.run else args.config,
              "run": args.run, "neuron": neuron, "plausibility": measures}
    path = export_stimulus(args.out, vertices, faces, renderer, view, poses, lights, spp=spp,
                           seed=args.seed, extra=source,
                           response=lambda images: model(images)[:, neuron],
                           optimum=optimum if optimum == optimum else None)
    print(f"stimulus written to {path.parent} ({path.name})", flush=True)
    return path


def pixel_mei_parser() -> argparse.ArgumentParser:
    parser = _fitted_parser("pixel-mei", "Pixel-space MEI of the config's unit and its "
                            "comparison with the 3D-MEI (lit3d.analysis.pixel_mei).", "pixel_mei")
    parser.add_argument("--steps", type=int, default=300, help="gradient-ascent steps")
    parser.add_argument("--lr", type=float, default=0.1, help="step, fraction of the norm")
    parser.add_argument("--blur_sigma", type=float, default=1.0,
                        help="gradient preconditioning blur, input pixels")
    parser.add_argument("--num_seeds", type=int, default=4,
                        help="renders averaged for the 3D-MEI's response")
    return parser


def pixel_mei_command(argv: list[str] | None = None) -> dict[str, float]:
    """``lit3d pixel-mei``: the pixel MEI of the config's unit at the config model's fixed norm,
    the 3D stimulus's response (mean over ``num_seeds`` renders at ``eval_spp``), both
    normalized by the unit's optimum where known; writes ``pixel_mei.png`` (the model input),
    ``comparison.png`` (bar plot) and ``pixel_mei.json``."""
    from lit3d.analysis.pixel_mei import pixel_mei, plot_comparison, plot_inputs
    from lit3d.data.views import Views

    args = pixel_mei_parser().parse_args(argv)
    if args.steps < 1 or args.lr <= 0 or args.num_seeds < 1:
        raise InputError("--steps and --num_seeds must be >= 1 and --lr > 0")
    module, vertices, faces, view, spp = load_fitted(args)
    model, neuron = module.response_model.eval(), int(module.hparams.neuron)
    normalizer = getattr(model, "normalizer", None)
    norm = float(getattr(normalizer, "norm", None) or 25.0)
    result = pixel_mei(model, neuron, steps=args.steps, lr=args.lr,
                       blur_sigma=args.blur_sigma, norm=norm, seed=args.seed)
    with torch.no_grad():
        renders = module.renderer(vertices, faces, Views.cat([view] * args.num_seeds),
                                  seed=args.seed, spp=spp)
        response_3d = float(model(renders)[:, neuron].mean())
    optimum = float(module.optimal_response)
    optimum = optimum if optimum == optimum else None  # NaN: unknown
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        seen = model.preprocess(renders[:1])[0]
        seen_response = float(model(renders[:1])[0, neuron])
    plot_inputs(out / "pixel_mei.png", {"pixel MEI": result.image[0], "3D-MEI render": seen},
                {"pixel MEI": result.response, "3D-MEI render": seen_response},
                title=f"Unit {neuron}: what the model sees (after its preprocessing)")
    plot_comparison(out / "comparison.png", {"3D-MEI": response_3d, "pixel MEI": result.response},
                    optimum, title=f"unit {neuron}")
    record = {"neuron": neuron, "norm": norm, "response_3d": response_3d,
              "response_pixel": result.response, "optimal_response": optimum,
              "normalized_3d": None if optimum is None else response_3d / optimum,
              "normalized_pixel": None if optimum is None else result.response / optimum}
    (out / "pixel_mei.json").write_text(json.dumps(record, indent=2) + "\n")
    headline = record["normalized_pixel"]
    print(f"3D-MEI response {response_3d:.4g}, pixel MEI {result.response:.4g}"
          + ("" if optimum is None else f" (optimum {optimum:.4g})"), flush=True)
    print(f"pixel_mei_normalized_response={headline:.3f}" if headline is not None
          else f"pixel_mei_response={result.response:.4g}", flush=True)
    return record


def rbf_validate(argv: list[str] | None = None) -> dict[str, float]:
    """``lit3d rbf-validate``: the RBF deformation fitted by Chamfer loss to known shapes
    (sphere → star, torus → bumpy torus; or ``--initial``/``--target`` mesh files). Writes
    each fitted mesh, ``rbf_validation.png`` (initial / fit / target, oblique renders) and
    ``rbf_validation.json``; prints each normalized Chamfer distance."""
    from lit3d.analysis.rbf_validation import fit_to_target, known_shape_pairs, plot_fits
    from lit3d.data.views import orbit_views
    from lit3d.geometry.io import load_mesh, save_mesh
    from lit3d.render.mitsuba import MitsubaRenderer

    parser = argparse.ArgumentParser(prog="lit3d rbf-validate", description=rbf_validate.__doc__)
    parser.add_argument("--out", default="rbf_validation")
    parser.add_argument("--initial", help="initial mesh file (with --target)")
    parser.add_argument("--target", help="target mesh file (with --initial)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if (args.initial is None) != (args.target is None):
        raise InputError("--initial and --target go together")
    pairs = ({"custom": (load_mesh(args.initial), load_mesh(args.target))} if args.initial
             else known_shape_pairs())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    renderer = MitsubaRenderer(image_size=96, spp=16)
    views = orbit_views(30.0, 35.0, distance=6.0, fov_deg=35.0, light_intensity=40.0)
    rows, results = {}, {}
    for name, (initial, target) in pairs.items():
        fit = fit_to_target(initial, target, steps=args.steps, seed=args.seed)
        save_mesh(out / f"{name}.ply", fit.mesh.vertices, fit.mesh.faces)
        results[name] = fit.chamfer
        print(f"{name}: normalized chamfer={fit.chamfer:.4f}", flush=True)
        with torch.no_grad():
            rows[name] = [renderer(m.vertices.float(), m.faces.long(), views)[0]
                          for m in (initial, fit.mesh, target)]
    plot_fits(out / "rbf_validation.png", rows, results)
    (out / "rbf_validation.json").write_text(json.dumps(
        {"normalized_chamfer": results, "steps": args.steps,
         "columns": ["initial", "fit", "target"]}, indent=2) + "\n")
    return results


def _fit(config: str, out: Path, name: str, extra: list[str]) -> Path:
    """Runs ``python -m lit3d fit`` into ``out/name`` and returns its log dir."""
    import subprocess

    command = [sys.executable, "-m", "lit3d", "fit", "--config", config,
               "--trainer.logger.init_args.save_dir", str(out),
               "--trainer.logger.init_args.name", name, *extra]
    print("running:", " ".join(command[1:]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{name}.log"
    with log.open("w") as handle:
        status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise InputError(f"the fit {name!r} failed (exit {status}); see {log}")
    versions = sorted((out / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return versions[-1]


def report(argv: list[str] | None = None) -> dict[str, Any]:
    """``lit3d report``: the metamer report of an MRD shape config (:mod:`lit3d.analysis.report`):
    reads (or runs) the pixel baseline and the latent runs over seeds, measures the null
    distribution over random meshes, and writes ``metamer_table.{csv,md}``, ``ecdf.png`` and
    ``report.json``."""
    import shlex

    from lit3d.analysis.report import (
        metamer_table,
        null_similarities,
        plot_ecdfs,
        random_meshes,
        read_run,
        write_table,
    )
    from lit3d.cli import build
    from lit3d.geometry.mesh import Mesh
    from lit3d.runs import Run

    parser = argparse.ArgumentParser(prog="lit3d report", description=report.__doc__)
    parser.add_argument("--run", help="the pixel baseline's run directory: its config is the "
                        "report's (instead of --config and --baseline)")
    parser.add_argument("--config", help="the MRD shape config")
    parser.add_argument("--baseline", help="log dir of the pixel baseline run (else run it)")
    parser.add_argument("--seeds", nargs="*", default=None,
                        help="log dirs of the latent runs (else run --num_seeds of them)")
    parser.add_argument("--num_seeds", type=int, default=3)
    parser.add_argument("--num_null", type=int, default=100,
                        help="random meshes of the null distribution (MRD: 1000)")
    parser.add_argument("--fit_args", default="", help="extra options for every fit it runs")
    parser.add_argument("--alpha", type=float, default=0.05, help="RSA significance level")
    parser.add_argument("--out", default="report")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_null < 1 or args.num_seeds < 1:
        raise InputError("--num_null and --num_seeds must be >= 1")
    if args.run:
        if args.config or args.baseline:
            raise InputError("--run is the baseline run and gives the config: leave out "
                             "--config and --baseline")
        run = Run.open(args.run)
        args.config, args.baseline = str(run.config_file), str(run.path)
    elif not args.config:
        raise InputError("give the baseline's run directory (--run) or a config (--config)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = shlex.split(args.fit_args)
    baseline_dir = Path(args.baseline) if args.baseline else _fit(
        args.config, out / "runs", "baseline", ["--model.init_args.loss", "pixel", *extra])
    baseline = read_run(baseline_dir)
    if args.seeds:
        seed_dirs = [Path(p) for p in args.seeds]
    else:
        seed_dirs = [_fit(args.config, out / "runs", f"seed{s}",
                          ["--model.init_args.loss", "latent", "--seed_everything", str(s),
                           "--model.init_args.baseline", str(baseline_dir), *extra])
                     for s in range(args.num_seeds)]
    seeds = [read_run(p) for p in seed_dirs]
    cli = build(["--config", args.config, "--trainer.logger", "false", *extra])
    module = cli.model
    if getattr(module, "model", None) is None or not hasattr(module, "target_vertices"):
        raise InputError("the report needs an MRD shape config with a model (network)")
    views = cli.datamodule.views
    null = null_similarities(module.model.eval(), module.renderer,
                             Mesh(module.target_vertices, module.target_faces), views,
                             random_meshes(args.num_null, seed=args.seed),
                             spp=module.hparams.eval_spp, seed=args.seed).flatten().tolist()
    rows = metamer_table(baseline, seeds, null, args.alpha)
    write_table(rows, out)
    distributions = {"null": null,
                     "seeds": [v for run in seeds for v in run["per_view_similarity"]],
                     "baseline": baseline["per_view_similarity"]}
    plot_ecdfs(out / "ecdf.png", distributions)
    medians = {k: float(np.median(v)) for k, v in distributions.items()}
    record = {"config": args.config, "baseline": str(baseline_dir),
              "seeds": [str(p) for p in seed_dirs], "network": baseline.get("network"),
              "medians": medians, "rows": rows, "distributions": distributions}
    (out / "report.json").write_text(json.dumps(record, indent=2) + "\n")
    print("medians: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()), flush=True)
    print(f"report written to {out}", flush=True)
    return record


COMMANDS = {"tune": tune, "export": export, "pixel-mei": pixel_mei_command,
            "rbf-validate": rbf_validate, "report": report}


def run(command: str, argv: list[str]) -> None:
    """Entry point of ``python -m lit3d tune|export|pixel-mei|rbf-validate|report``: bad input
    is one line and exit status 2."""
    import os

    from lit3d.console import quiet

    quiet()
    try:
        COMMANDS[command](argv)
    except (InputError, FileNotFoundError) as error:  # a ValueError elsewhere is a bug
        if os.environ.get("LIT3D_TRACEBACK"):
            raise
        print(f"lit3d {command}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
