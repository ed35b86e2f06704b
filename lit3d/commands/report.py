"""``lit3d report``: the metamer report of an MRD shape config (:mod:`lit3d.analysis.report`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lit3d.errors import InputError


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


def _network_report(args: argparse.Namespace) -> dict[str, Any]:
    """``--networks``: ``networks_table.{md,csv}`` and ``networks.json`` in ``--out``."""
    from lit3d.analysis.report import network_table, write_table

    if args.run or args.config or args.baseline or args.seeds:
        raise InputError("--networks takes run directories only: leave out --run, --config, "
                         "--baseline and --seeds")
    rows = network_table(args.networks, args.alpha)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(rows, out, "networks_table")
    record = {"groups": args.networks, "rows": rows}
    (out / "networks.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"network table written to {out / 'networks_table.md'}", flush=True)
    return record


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit3d report", description=run.__doc__)
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
    parser.add_argument("--networks", nargs="+", action="append", metavar="RUN",
                        help="a table over networks instead (MRD Tables 3/4): a pixel baseline "
                        "run scored by several networks (similarity_models), then latent runs "
                        "of any of them; repeat the option for each target")
    parser.add_argument("--out", default="report")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(argv: list[str] | None = None) -> dict[str, Any]:
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
    from lit3d.modules import MRDShape
    from lit3d.runs import Run

    args = parser().parse_args(argv)
    if args.networks:
        return _network_report(args)
    if args.num_null < 1 or args.num_seeds < 1:
        raise InputError("--num_null and --num_seeds must be >= 1")
    if args.run:
        if args.config or args.baseline:
            raise InputError("--run is the baseline run and gives the config: leave out "
                             "--config and --baseline")
        baseline_run = Run.open(args.run)
        args.config, args.baseline = str(baseline_run.config_file), str(baseline_run.path)
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
    if not isinstance(module, MRDShape) or module.model is None:
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
