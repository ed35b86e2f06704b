"""Slow end-to-end checks of the MRD demo config (``pytest -m slow``; CI runs them):
the acceptance criteria, run as a user would run them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SUMMARY_FIELDS = ("epoch", "top_similarity", "top_baseline_similarity", "rsa_tau", "rsa_p",
                  "metamer", "initial_similarity", "final_similarity", "per_view_similarity",
                  "chamfer", "network", "loss")


def fit(save_dir: Path, name: str, *overrides: str) -> tuple[str, dict]:
    """Runs ``python -m lit3d fit --config configs/mrd_demo.yaml``; returns its last output line
    and its ``summary.json``."""
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", "configs/mrd_demo.yaml",
         "--trainer.logger.init_args.save_dir", str(save_dir),
         "--trainer.logger.init_args.name", name, "--trainer.enable_progress_bar", "false",
         *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    summary = json.loads((save_dir / name / "version_0" / "summary.json").read_text())
    return last, summary


def test_demo_pixel_baseline_reconstructs_and_latent_run_writes_the_criterion(tmp_path):
    last, baseline = fit(tmp_path, "baseline")
    print("baseline:", last, {k: baseline[k] for k in SUMMARY_FIELDS if k != "per_view_similarity"})
    assert last.startswith("chamfer=")
    headline = dict(item.split("=") for item in last.split())
    assert baseline["chamfer"] == pytest.approx(float(headline["chamfer"]), abs=5e-4)
    assert baseline["hausdorff"] == pytest.approx(float(headline["hausdorff"]), abs=5e-4)
    assert baseline["chamfer"] < 0.01
    assert baseline["top_similarity"] > baseline["initial_similarity"]

    # The latent run (30 epochs to keep CI short) against the baseline's bar.
    last, latent = fit(tmp_path, "latent", "--model.init_args.loss", "latent",
                       "--model.init_args.baseline", str(tmp_path / "baseline" / "version_0"),
                       "--trainer.max_epochs", "30")
    print("latent:", last, {k: latent[k] for k in SUMMARY_FIELDS if k != "per_view_similarity"})
    assert set(SUMMARY_FIELDS) <= set(latent)
    assert latent["loss"] == "latent" and latent["network"] == "efficientnet_lite0"
    assert latent["top_baseline_similarity"] == baseline["top_similarity"]
    assert latent["metamer"] == (latent["top_similarity"] >= baseline["top_similarity"])
    assert 0 <= latent["rsa_p"] <= 1 and -1 <= latent["rsa_tau"] <= 1
    assert len(latent["per_view_similarity"]) == 16
    assert latent["final_similarity"] > latent["initial_similarity"]
