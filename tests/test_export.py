"""Stimulus export (``python -m lit3d export``): meshes, renders and a re-renderable sidecar."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from lit3d.analysis.export import export_stimulus, renderer_spec, rerender
from lit3d.data.views import overhead_views
from lit3d.geometry.io import save_mesh
from lit3d.geometry.procedural import StarShape
from lit3d.render.mitsuba import MitsubaEnvironmentRenderer, MitsubaRenderer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def star():
    mesh = StarShape(subdivisions=2).build()
    return mesh.vertices.float(), mesh.faces.long()


def test_cli_export_writes_meshes_renders_and_a_sidecar_that_rerenders_them(tmp_path, star):
    vertices, faces = star
    mesh = save_mesh(tmp_path / "fitted.ply", vertices, faces)
    out = tmp_path / "stimulus"
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "export", "--config", "configs/mei3d_simple_cell.yaml",
         "--mesh", str(mesh), "--out", str(out), "--image_size", "40", "--spp", "8",
         "--poses", "0,0;30,10", "--lights", "45,75;135,45"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    sidecar = json.loads((out / "stimulus.json").read_text())
    assert len(sidecar["renders"]) == 4  # 2 poses x 2 lights
    assert sidecar["renderer"]["init_args"]["image_size"] == 40
    assert sidecar["renderer"]["init_args"]["spp"] == 8  # the samples the renders used
    assert sidecar["neuron"] == 0
    for entry in sidecar["renders"]:
        assert entry["spp"] == 8 and entry["response"] > 0
        assert entry["normalized_response"] == pytest.approx(
            entry["response"] / sidecar["renders"][0]["response"]
            * sidecar["renders"][0]["normalized_response"])
    assert sidecar["plausibility"]["self_intersections"] == 0.0
    for fmt in ("obj", "ply", "glb"):
        loaded = trimesh.load(out / f"mesh.{fmt}", force="mesh", process=False)
        assert np.allclose(loaded.vertices, vertices.numpy(), atol=1e-6), fmt
        assert (loaded.faces == faces.numpy()).all(), fmt
    again = rerender(out / "stimulus.json", tmp_path / "again")
    assert len(again) == 4
    for entry, path in zip(sidecar["renders"], again):
        assert path.read_bytes() == (out / entry["file"]).read_bytes(), entry["file"]
    # the renders differ by pose and by light
    files = [(out / e["file"]).read_bytes() for e in sidecar["renders"]]
    assert len(set(files)) == 4


def test_export_keeps_the_views_light_without_lights_and_refuses_unserializable_renderers(
        tmp_path, star):
    vertices, faces = star
    view = overhead_views(light_azimuth_deg=10.0)
    path = export_stimulus(tmp_path, vertices, faces, MitsubaRenderer(image_size=16, spp=2),
                           view, poses=[(0.0, 0.0)])
    entry = json.loads(path.read_text())["renders"][0]
    assert entry["light_deg"] is None
    assert entry["view"]["light_position"] == pytest.approx(view.light_position[0].tolist())
    assert renderer_spec(MitsubaRenderer(image_size=16))["init_args"]["image_size"] == 16
    with pytest.raises(ValueError, match="environment"):
        renderer_spec(MitsubaEnvironmentRenderer())


def test_bad_pose_list_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "export", "--config", "configs/mei3d_simple_cell.yaml",
         "--out", str(tmp_path), "--poses", "0;1"], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit3d export: error: bad --poses"), lines


def test_export_refuses_a_self_intersecting_mesh_unless_allowed(tmp_path):
    """A mesh that passes through itself is not a physical object: one line, exit 2, nothing
    written; ``--allow-self-intersections`` exports it and the sidecar says how bad it is."""
    from lit3d.geometry.primitives import IcoSphere

    sphere = IcoSphere(2).build()
    rotation = torch.tensor(trimesh.transformations.random_rotation_matrix(
        rand=np.array([0.3, 0.6, 0.1]))[:3, :3], dtype=torch.float32)
    vertices = torch.cat([sphere.vertices, sphere.vertices @ rotation.T + torch.tensor(
        [0.7, 0.2, 0.1])]) * 0.5
    faces = torch.cat([sphere.faces, sphere.faces + sphere.vertices.shape[0]])
    mesh = save_mesh(tmp_path / "knot.ply", vertices, faces)
    command = [sys.executable, "-m", "lit3d", "export", "--config",
               "configs/mei3d_simple_cell.yaml", "--mesh", str(mesh), "--image_size", "16",
               "--spp", "2"]
    refused = subprocess.run(command + ["--out", str(tmp_path / "refused")], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lit3d export: error: the stimulus passes through itself")
    assert not (tmp_path / "refused").exists()
    allowed = subprocess.run(command + ["--out", str(tmp_path / "allowed"),
                                        "--allow-self-intersections"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    measures = json.loads((tmp_path / "allowed" / "stimulus.json").read_text())["plausibility"]
    assert measures["self_intersections"] > 0 and "extent_over_view" in measures
    assert "area_ratio" not in measures  # not a deformation of the config's initial sheet
