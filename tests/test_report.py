"""The metamer report (lit3d.analysis.report, ``python -m lit3d report``)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lit3d.analysis.report import ecdf, ecdf_difference, metamer_table, random_meshes, write_table
from lit3d.geometry.mesh import validate_mesh

ROOT = Path(__file__).resolve().parents[1]


def test_ecdf_difference_is_the_signed_area_and_ks():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.2, 0.9, 500), rng.uniform(-0.5, 0.3, 400)
    result = ecdf_difference(a, b)
    assert result["area"] == pytest.approx(a.mean() - b.mean(), abs=2e-3)
    x = np.array([0.2])  # where the gap F_b − F_a is largest (a starts, b mostly done)
    assert result["ks"] == pytest.approx((ecdf(b, x) - ecdf(a, x))[0], abs=0.03)
    assert ecdf_difference(a, a) == {"area": 0.0, "ks": 0.0}
    assert np.isnan(ecdf_difference([], b)["area"])


def test_random_meshes_are_valid_reproducible_and_varied():
    meshes = random_meshes(6, seed=3, subdivisions=2)
    again = random_meshes(6, seed=3, subdivisions=2)
    for m, n in zip(meshes, again):
        validate_mesh(m.vertices, m.faces)
        assert (m.vertices == n.vertices).all()
    sizes = [float(m.vertices.norm(dim=-1).max()) for m in meshes]
    assert max(sizes) - min(sizes) > 0.2


def test_metamer_table_has_table_4s_columns(tmp_path):
    baseline = {"top_similarity": 0.9, "per_view_similarity": [0.88, 0.9, 0.92]}
    seeds = [{"path": str(tmp_path / "seed0" / "version_0"), "epoch": 7, "top_similarity": 0.91,
              "per_view_similarity": [0.9, 0.91, 0.92], "rsa_tau": 0.5, "rsa_p": 0.01},
             {"path": "", "epoch": 3, "top_similarity": 0.7,
              "per_view_similarity": [0.6, 0.7, 0.8], "rsa_tau": 0.1, "rsa_p": 0.4}]
    rows = metamer_table(baseline, seeds, null=[0.1, 0.2, 0.3])
    assert list(rows[0]) == ["run", "epoch", "top_similarity", "top_baseline", "rsa_tau", "rsa_p",
                             "significant", "similarity_difference", "seed_null_ecdf",
                             "seed_base_ecdf", "metamer"]
    assert rows[0]["run"] == "seed0/version_0" and rows[0]["metamer"] and rows[0]["significant"]
    assert not rows[1]["metamer"] and not rows[1]["significant"]
    assert rows[1]["similarity_difference"] == pytest.approx(-0.2)
    assert rows[0]["seed_null_ecdf"] == pytest.approx(0.91 - 0.2, abs=2e-3)
    csv_path, md_path = write_table(rows, tmp_path)
    assert len(csv_path.read_text().splitlines()) == 3
    assert md_path.read_text().startswith("| run | epoch | top_similarity")


@pytest.mark.slow
def test_report_on_the_mrd_demo_puts_the_null_below_the_seeds(tmp_path):
    """The acceptance criterion on the MRD demo config (shrunk: 64², 8 views, 20 epochs): the
    command runs the baseline and two latent seeds, measures 100 random meshes, writes the
    table and the ECDF plot, and the null's median similarity is below the seeds'."""
    fit_args = ("--trainer.max_epochs 20 --trainer.check_val_every_n_epoch 5 "
                "--model.init_args.renderer.init_args.image_size 64 --data.init_args.num_views 8 "
                "--model.init_args.target_spp 32 --model.init_args.eval_spp 8 "
                "--trainer.enable_progress_bar false")
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "report", "--config", "configs/mrd_demo.yaml",
         "--num_seeds", "2", "--num_null", "100", "--out", str(out), "--fit_args", fit_args],
        cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    record = json.loads((out / "report.json").read_text())
    print(record["medians"], [(r["top_similarity"], r["top_baseline"]) for r in record["rows"]])
    assert len(record["distributions"]["null"]) == 100 * 8
    assert len(record["rows"]) == 2
    assert record["medians"]["null"] < record["medians"]["seeds"]
    assert (out / "ecdf.png").stat().st_size > 1000
    table = (out / "metamer_table.md").read_text().splitlines()
    assert len(table) == 4 and "seed_null_ecdf" in table[0]
