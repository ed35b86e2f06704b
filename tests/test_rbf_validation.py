"""RBF validation on known shapes (Fig. 3A): Chamfer fits of sphere -> star, torus -> genus 1."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import trimesh

from lit3d.analysis.rbf_validation import chamfer_loss, fit_to_target, known_shape_pairs
from lit3d.geometry.io import save_mesh
from lit3d.geometry.primitives import IcoSphere, Torus
from lit3d.geometry.procedural import BumpyTorus
from lit3d.metrics.chamfer import chamfer_distance

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("source", [Torus(), BumpyTorus()], ids=["torus", "bumpy"])
def test_tori_are_closed_genus_one_and_outward(source):
    mesh = source.build()
    t = trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), process=False)
    assert t.is_watertight and t.euler_number == 0 and t.volume > 0


def test_bumpy_torus_refuses_self_intersection():
    with pytest.raises(ValueError, match="self-intersect"):
        BumpyTorus(major=1.0, minor=0.6, amplitude=0.8)


def test_chamfer_loss_is_zero_on_equal_sets_and_differentiable():
    points = torch.rand(50, 3)
    assert chamfer_loss(points, points).item() == pytest.approx(0.0, abs=1e-6)
    moved = (points + 0.1).requires_grad_(True)
    loss = chamfer_loss(moved, points)
    loss.backward()
    assert loss > 0 and moved.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["sphere_to_star", "torus_to_bumpy_torus"])
def test_rbf_deformation_reaches_known_targets(name):
    """The acceptance criterion: normalized Chamfer distance < 0.01 on both targets."""
    initial, target = known_shape_pairs()[name]
    before = chamfer_distance(initial.vertices, initial.faces, target.vertices, target.faces)
    fit = fit_to_target(initial, target, steps=100, num_points=1500, target_points=4000)
    print(name, before, fit.chamfer)
    assert fit.chamfer < 0.01 < before
    assert fit.history[-1] < fit.history[0] / 3
    assert torch.equal(fit.mesh.faces, initial.faces.long())  # a deformation, same topology


def test_rbf_validate_command_on_mesh_files(tmp_path):
    sphere = IcoSphere(1, 1.0).build()
    small = IcoSphere(1, 0.8).build()
    save_mesh(tmp_path / "a.ply", sphere.vertices, sphere.faces)
    save_mesh(tmp_path / "b.ply", small.vertices, small.faces)
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "rbf-validate", "--initial", str(tmp_path / "a.ply"),
         "--target", str(tmp_path / "b.ply"), "--steps", "30", "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "rbf_validation.json").read_text())
    assert set(record["normalized_chamfer"]) == {"custom"}
    from lit3d.figures import read_description

    figure = read_description(tmp_path / "out" / "rbf_validation.png")
    assert [ax["title"] for ax in figure["axes"]] == ["initial mesh", "RBF fit", "target"]
    chamfer = record["normalized_chamfer"]["custom"]
    assert figure["axes"][0]["ylabel"] == f"custom\nChamfer {chamfer:.4f}"
    assert "Chamfer" in figure["title"]
    assert (tmp_path / "out" / "custom.ply").is_file()
    bad = subprocess.run([sys.executable, "-m", "lit3d", "rbf-validate", "--initial", "x.ply"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "go together" in bad.stderr
