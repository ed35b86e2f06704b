"""Config x method x seed grid of 3D-MEI fits: response and physical plausibility.

Runs ``python -m lit3d fit`` for every (config, method, seed) asked for, two fits at a time with
one thread each, and writes ``<out>/methods.json`` (every run's final metrics) and
``<out>/methods.md`` (one row per config and method: normalized response, self-intersecting
fraction and area ratio over the seeds; then one row per run). The methods are the shipped
configs with options switched off one by one, so the table shows what each part of the method does:

- ``shipped``: the config as it is;
- ``no_repulsion``: without the repulsion barrier (``lambda_repulsion 0``);
- ``no_guard``: also without the step guard (self-intersections and area growth allowed);
- ``regularizers_only``: the paper's four regularizers alone, in lit3d's earlier setting: no
  guard, no repulsion, a free rim, for the simple cells the sheet 2 units wide (smaller than
  the view), and the learning rates and steps that were tuned for it;
- ``silhouette_spp_<n>`` (n = 1, 2, 4, 8), ``shading_spp_<n>`` (n = 2, 4, 8): the config with
  ``n`` samples per pixel for the primary-silhouette (or the shading) gradient term
  (``MitsubaRenderer(silhouette_spp=n)``, ``shading_spp=n``);
- ``epochs_<n>`` (n = 2 ... 12): the config trained for ``n`` epochs (the learning-rate schedule
  spans the steps the run has).

Usage: ``python scripts/mei3d_methods.py --configs mei3d_simple_cell --methods shipped
regularizers_only --seeds 0 1 --out runs/methods`` (several hours for everything on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
M = "--model.init_args."
OFF_REPULSION = [M + "lambda_repulsion", "0"]
OFF_GUARD = OFF_REPULSION + [M + "prevent_self_intersections", "false",
                             M + "max_area_ratio", "null"]
SMALL_FREE_SHEET = [M + "mesh.init_args.size", "2.0", M + "hold_boundary", "false"]

#: Per config, the overrides of each method (``shipped`` has none).
METHODS: dict[str, dict[str, list[str]]] = {
    "mei3d_simple_cell": {
        "no_repulsion": OFF_REPULSION,
        "no_guard": OFF_GUARD,
        "regularizers_only": OFF_GUARD + SMALL_FREE_SHEET + [
            M + "lr", "0.002", "--trainer.max_epochs", "12"],
    },
    "mei3d_simple_cell_sphere": {
        "no_repulsion": OFF_REPULSION,
        "no_guard": OFF_GUARD,
        "regularizers_only": OFF_GUARD + [M + "lr", "0.003", "--trainer.max_epochs", "8"],
    },
    "mei3d_complex_cell": {
        "no_repulsion": OFF_REPULSION,
        "no_guard": OFF_GUARD,
        "regularizers_only": OFF_GUARD + [M + "hold_boundary", "false", M + "lr", "0.001",
                              "--trainer.max_epochs", "24"],
    },
    "mei3d_complex_cell_sphere": {
        "no_repulsion": OFF_REPULSION,
        "no_guard": OFF_GUARD,
        "regularizers_only": OFF_GUARD + [M + "lr", "0.003", "--trainer.max_epochs", "16"],
    },
    "mei3d_population": {
        "no_repulsion": OFF_REPULSION,
        "no_guard": OFF_GUARD,
        "regularizers_only": OFF_GUARD + SMALL_FREE_SHEET + [
            M + "lr", "0.002", "--trainer.max_epochs", "12"],
    },
}
#: Methods of every config: fewer gradient samples per pixel, or another number of epochs.
COMMON = {
    **{f"silhouette_spp_{n}": [M + "renderer.init_args.silhouette_spp", str(n)]
       for n in (1, 2, 4, 8)},
    **{f"shading_spp_{n}": [M + "renderer.init_args.shading_spp", str(n)] for n in (2, 4, 8)},
    **{f"epochs_{n}": ["--trainer.max_epochs", str(n)] for n in range(2, 13)}}
HEADLINE = {"mei3d_population": "mean_normalized_response"}


def run(config: str, method: str, seed: int, out: Path) -> dict:
    """One fit; returns its final metrics (plus config, method, seed, wall time)."""
    name = f"{config}-{method}-seed{seed}"
    overrides = [] if method == "shipped" else {**METHODS[config], **COMMON}[method]
    command = [sys.executable, "-m", "lit3d", "fit", "--config", f"configs/{config}.yaml",
               "--seed_everything", str(seed), "--trainer.logger.init_args.save_dir", str(out),
               "--trainer.logger.init_args.name", name, "--trainer.enable_progress_bar",
               "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks",
               "[]", *overrides]
    start = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = out / f"{name}.log"
    with open(log, "w") as stream:
        code = subprocess.call(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT,
                               env=env)
    if code != 0:
        raise RuntimeError(f"{name} failed (exit {code}); see {log}")
    metrics = json.loads(sorted((out / name).glob("version_*/metrics.json"))[-1].read_text())
    record = {"config": config, "method": method, "seed": seed,
              "wall_s": round(time.time() - start), "response":
              metrics[HEADLINE.get(config, "normalized_response")],
              "self_intersections": metrics["self_intersections"],
              "area_ratio": metrics["area_ratio"]}
    print(json.dumps(record), flush=True)
    return record


def table(records: list[dict]) -> str:
    rows = ["| config | method | seeds | normalized response | self-intersecting faces | "
            "area / initial |", "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["config"], r["method"]), []).append(r)
    for (config, method), runs in groups.items():
        runs.sort(key=lambda r: r["seed"])

        def span(key: str, fmt: str, runs: list[dict] = runs) -> str:
            values = [r[key] for r in runs]
            if len(values) == 1:
                return format(values[0], fmt)
            return (f"{format(min(values), fmt)}–{format(max(values), fmt)} "
                    f"(median {format(statistics.median(values), fmt)})")

        rows.append(f"| `{config}` | {method} | {', '.join(str(r['seed']) for r in runs)} | "
                    f"{span('response', '.3f')} | {span('self_intersections', '.3f')} | "
                    f"{span('area_ratio', '.2f')} |")
    return "\n".join(rows) + "\n"


def runs_table(records: list[dict]) -> str:
    """One row per run, in the order of ``records``."""
    rows = ["| config | method | seed | normalized response | self-intersecting faces | "
            "area / initial | wall time (s) |", "|---|---|---|---|---|---|---|"]
    for r in records:
        wall = "–" if r.get("wall_s") is None else str(r["wall_s"])
        rows.append(f"| `{r['config']}` | {r['method']} | {r['seed']} | {r['response']:.3f} | "
                    f"{r['self_intersections']:.3f} | {r['area_ratio']:.2f} | {wall} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--methods", nargs="+", default=["shipped", "no_repulsion", "no_guard",
                                                         "regularizers_only"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", default="runs/methods")
    parser.add_argument("--jobs", type=int, default=2, help="fits at a time")
    args = parser.parse_args(argv)
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(c, m, s) for c in args.configs for m in args.methods for s in args.seeds]
    known = out / "methods.json"
    records = json.loads(known.read_text()) if known.is_file() else []
    done = {(r["config"], r["method"], r["seed"]) for r in records}
    with ThreadPoolExecutor(args.jobs) as pool:
        for record in pool.map(lambda job: run(*job, out), [j for j in jobs if j not in done]):
            records.append(record)
            known.write_text(json.dumps(records, indent=1) + "\n")
    summary = table(records) + "\n" + runs_table(records)
    (out / "methods.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
