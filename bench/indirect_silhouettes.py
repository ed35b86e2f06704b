"""What indirect silhouettes (``direct_projective``'s ``sppi``) change on the MRD demo.

lit3d's renderers default to ``sppi=0`` (no indirect-visibility samples); Mitsuba's own default,
which the MRD reference code keeps, is 128. This runs ``configs/mrd_demo.yaml`` (the pixel
baseline) for ``--epochs`` epochs once per ``--sppi`` value, one after the other in this
process's CPU, each as its own ``python -m lit3d fit``, and reports the whole command's wall
time, the mean training-step time, Chamfer and Hausdorff distance to the target and the top
EfficientNet-Lite0 similarity. A separate ``--step_epochs`` run per value times the steps of
the heaviest settings without waiting for a whole fit.

    python bench/indirect_silhouettes.py [--sppi 0 16 128] [--epochs 24] [--step_epochs 2]

Results go into ``bench/results.json`` under ``indirect_silhouettes``; the last line is the
step-time ratio of the largest ``sppi`` to ``sppi=0``, ``sppi_step_ratio=<x>``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "mrd_demo.yaml")


def fit(sppi: int, epochs: int, out: Path) -> dict:
    options = json.dumps({"sppi": int(sppi)})
    command = [sys.executable, "-m", "lit3d", "fit", "--config", CONFIG,
               "--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false",
               "--model.init_args.renderer.init_args.integrator_options", options,
               "--trainer.logger.init_args.save_dir", str(out)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"sppi={sppi}: the fit failed:\n{result.stderr[-3000:]}")
    run = sorted((out / "mrd_demo").glob("version_*"))[-1]
    metrics = json.loads((run / "metrics.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    return {"sppi": sppi, "epochs": epochs, "wall_s": round(wall, 1),
            "steps": metrics["steps"], "fit_s": metrics["wall_time_s"],
            "chamfer": summary["chamfer"], "hausdorff": summary.get("hausdorff"),
            "top_similarity": summary["top_similarity"], "epoch": summary["epoch"],
            "num_vertices": metrics["num_vertices"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sppi", type=int, nargs="+", default=[0, 16, 128])
    parser.add_argument("--epochs", type=int, default=24, help="epochs of the quality runs "
                        "(0: skip them)")
    parser.add_argument("--step_epochs", type=int, default=2, help="epochs of the timing runs")
    parser.add_argument("--quality_sppi", type=int, nargs="*", default=None,
                        help="the sppi values of the quality runs (default: all of --sppi)")
    args = parser.parse_args()
    results = {"timing": [], "quality": []}
    with tempfile.TemporaryDirectory() as tmp:
        for sppi in args.sppi:
            row = fit(sppi, args.step_epochs, Path(tmp) / f"step{sppi}")
            row["step_ms"] = round(1000 * row["fit_s"] / max(row["steps"], 1), 1)
            results["timing"].append(row)
            print(f"timing sppi={sppi}: {row['step_ms']} ms/step over {row['steps']} steps "
                  f"(whole fit incl. start-up and evaluation {row['wall_s']} s)", flush=True)
        for sppi in (args.sppi if args.quality_sppi is None else args.quality_sppi):
            if args.epochs <= 0:
                break
            row = fit(sppi, args.epochs, Path(tmp) / f"quality{sppi}")
            results["quality"].append(row)
            print(f"quality sppi={sppi}: {args.epochs} epochs, chamfer {row['chamfer']:.4f}, "
                  f"hausdorff {row['hausdorff']:.4f}, top similarity "
                  f"{row['top_similarity']:.4f} (epoch {row['epoch']}), wall {row['wall_s']} s",
                  flush=True)
    path = ROOT / "bench" / "results.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored["indirect_silhouettes"] = results
    path.write_text(json.dumps(stored, indent=2) + "\n")
    timing = {r["sppi"]: r["step_ms"] for r in results["timing"]}
    ratio = timing[max(timing)] / timing[min(timing)]
    print(f"sppi_step_ratio={ratio:.2f} (sppi={max(timing)} vs sppi={min(timing)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
