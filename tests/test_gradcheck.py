"""``lit3d gradcheck``: the renderer's vertex gradient against central finite differences,
silhouette and interior vertices apart."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit3d.analysis.gradcheck import gradient_check, smooth_directions, vertex_groups
from lit3d.data.views import overhead_views
from lit3d.geometry.primitives import IcoSphere, Sheet
from lit3d.geometry.topology import vertex_normals
from lit3d.render.mitsuba import MitsubaRenderer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MRD = "configs/mrd_demo.yaml"
QUICK = ["--views", "1", "--directions", "4"]


def gradcheck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lit3d", "gradcheck", *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=600)


def test_groups_split_a_sphere_at_its_silhouette_and_a_flat_sheet_has_none():
    sphere = IcoSphere(subdivisions=3, radius=0.7).build()
    groups = vertex_groups(sphere.vertices, sphere.faces, overhead_views())
    assert not (groups["silhouette"] & groups["interior"]).any()
    normals = vertex_normals(sphere.vertices, sphere.faces)
    equator = sphere.vertices[:, 2].abs() < 1e-6  # the camera looks down the z axis
    assert groups["silhouette"][equator].all()
    assert not groups["silhouette"][normals[:, 2].abs() > 0.5].any()
    assert groups["interior"][int(torch.argmax(sphere.vertices[:, 2]))]
    sheet = Sheet(resolution=10, size=2.0).build()
    groups = vertex_groups(sheet.vertices, sheet.faces, overhead_views())
    assert not groups["silhouette"].any() and groups["interior"].all()


def test_directions_move_only_the_group_along_the_normals():
    sphere = IcoSphere(subdivisions=2, radius=0.7).build()
    mask = sphere.vertices[:, 0] > 0.2
    fields = smooth_directions(sphere.vertices, sphere.faces, mask, 3,
                               torch.Generator().manual_seed(0))
    assert fields.shape == (3, *sphere.vertices.shape)
    assert (fields[:, ~mask] == 0).all()
    assert torch.allclose(fields.norm(dim=-1).amax(dim=1), torch.ones(3))
    normals = vertex_normals(sphere.vertices, sphere.faces)
    tangential = fields - (fields * normals).sum(-1, keepdim=True) * normals
    assert tangential.abs().max() < 1e-6


@pytest.mark.parametrize("integrator", ["direct_projective", "prb"])
def test_the_projective_integrator_passes_and_prb_fails_on_silhouettes(integrator):
    """A dark sphere on a bright background under a random weighting of the pixels: with its
    boundary term the renderer's derivatives match the differences in both groups; ``prb``
    (shading only) gets the silhouette's wrong, the interior right."""
    sphere = IcoSphere(subdivisions=3, radius=0.7).build()
    views = overhead_views()
    weights = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    renderer = MitsubaRenderer(image_size=64, spp=16, integrator=integrator, albedo=0.2,
                               background=1.0)

    def loss(vertices, seed, spp):
        return (renderer(vertices, sphere.faces, views, seed=seed, spp=spp) * weights).mean()

    checks = gradient_check(loss, sphere.vertices, sphere.faces, views, directions=6, spp=64)
    assert set(checks) == {"silhouette", "interior"}
    assert checks["interior"].cosine > 0.95
    assert checks["silhouette"].numeric.abs().max() > 0.05  # a real signal
    if integrator == "direct_projective":
        assert checks["silhouette"].cosine > 0.99
        assert checks["silhouette"].relative_error < 0.1
    else:
        assert checks["silhouette"].cosine < 0  # measured -0.995


def test_the_command_passes_the_mrd_demo_and_fails_it_with_prb():
    good = gradcheck("--config", MRD, *QUICK)
    assert good.returncode == 0, good.stderr[-3000:]
    lines = good.stdout.strip().splitlines()
    assert lines[0].startswith("silhouette: ") and lines[1].startswith("interior: ")
    assert lines[-1].startswith("gradcheck=pass min_cosine=")
    bad = gradcheck("--config", MRD, *QUICK, "--",
                    "--model.init_args.renderer.init_args.integrator", "prb")
    assert bad.returncode == 1, bad.stderr[-3000:]
    assert bad.stdout.strip().splitlines()[-1].startswith("gradcheck=fail")
    relative = float(bad.stdout.split("silhouette:")[1].split("relative error")[1].split()[0])
    assert relative > 0.5


def test_the_command_checks_a_3d_mei_config():
    result = gradcheck("--config", "configs/mei3d_simple_cell.yaml", *QUICK, "--spp", "32")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("interior: ")  # the sheet fills the view: no silhouette


@pytest.mark.parametrize("args,message", [
    ([], "give a run directory (--run) or a config (--config)"),
    (["--config", MRD, "--eps", "0"], "--eps > 0"),
    (["--config", "configs/mrd_material_demo.yaml"], "no loss of mesh vertices"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = gradcheck(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit3d gradcheck: error: "), lines
    assert message in lines[0]
