"""The pixel-space MEI baseline (lit3d.analysis.pixel_mei, ``python -m lit3d pixel-mei``)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit3d.analysis.pixel_mei import gaussian_blur, pixel_mei
from lit3d.geometry.io import save_mesh
from lit3d.geometry.primitives import Sheet
from lit3d.models.cells import ComplexCell, SimpleCell

ROOT = Path(__file__).resolve().parents[1]


def test_gaussian_blur_keeps_the_mean_and_smooths():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    blurred = gaussian_blur(images, 1.5)
    assert blurred.shape == images.shape
    assert torch.allclose(blurred.mean((2, 3)), images.mean((2, 3)), atol=0.02)
    assert blurred.std() < images.std() / 2
    assert torch.equal(gaussian_blur(images, 0.0), images)


@pytest.mark.parametrize("cls", [SimpleCell, ComplexCell])
def test_pixel_mei_reaches_the_cells_optimum_at_the_fixed_norm(cls):
    cell = cls(input_size=64, orientation_deg=30.0, frequency=4.0, sigma=0.12, x=0.1)
    optimum = float(cell(cell.optimal_images())[0, 0])
    result = pixel_mei(cell, steps=150, seed=1)
    assert result.image.norm().item() == pytest.approx(25.0, rel=1e-4)
    assert result.response / optimum >= 0.95
    assert result.history[0] < result.history[-1]


def test_pixel_mei_command_writes_the_comparison(tmp_path):
    sheet = Sheet(resolution=16).build()
    mesh = save_mesh(tmp_path / "flat.ply", sheet.vertices, sheet.faces)
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "pixel-mei", "--config", "configs/mei3d_simple_cell.yaml",
         "--mesh", str(mesh), "--out", str(tmp_path / "out"), "--spp", "4", "--num_seeds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "pixel_mei.json").read_text())
    assert record["normalized_pixel"] >= 0.95
    assert record["normalized_3d"] < record["normalized_pixel"]  # a flat sheet is no MEI
    assert result.stdout.strip().splitlines()[-1] == (
        f"pixel_mei_normalized_response={record['normalized_pixel']:.3f}")
    from PIL import Image

    from lit3d.figures import read_description

    bars = read_description(tmp_path / "out" / "comparison.png")["axes"][0]
    assert bars["ylabel"].startswith("normalized response") and bars["xlabel"] == "stimulus"
    assert bars["legend"] == ["optimum (the cell's own filter)"] and bars["title"]
    inputs = read_description(tmp_path / "out" / "pixel_mei.png")
    panels = [ax for ax in inputs["axes"] if ax["image"]]
    assert [ax["title"].split(":")[0] for ax in panels] == ["pixel MEI", "3D-MEI render"]
    assert any(ax["colorbar"] and ax["ylabel"] for ax in inputs["axes"])
    with Image.open(tmp_path / "out" / "pixel_mei.png") as picture:
        assert picture.width >= 640 and picture.height >= 320
