"""Per-vertex colour: renderer support (Mitsuba, PyTorch3D) and MEI3D's colour optimization."""

import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lit3d.data.datamodule import ViewsDataModule
from lit3d.data.views import Views, orbit_views, overhead_views
from lit3d.geometry.colors import VertexColors, color_smoothness
from lit3d.geometry.primitives import IcoSphere, Sheet
from lit3d.geometry.topology import edges_from_faces
from lit3d.models.cells import SimpleCell
from lit3d.modules.mei3d import MEI3D
from lit3d.render.mitsuba import MitsubaRenderer

ROOT = Path(__file__).resolve().parents[1]


def test_uniform_colors_render_like_the_albedo_and_bad_shapes_are_refused():
    sheet = Sheet(resolution=6).build()
    renderer = MitsubaRenderer(image_size=16, spp=8)
    views = overhead_views()
    plain = renderer(sheet.vertices, sheet.faces, views, seed=3)
    colored = renderer(sheet.vertices, sheet.faces, views, seed=3,
                       colors=torch.full((sheet.vertices.shape[0], 3), renderer.albedo))
    assert torch.allclose(plain, colored, atol=1e-5)
    with pytest.raises(ValueError, match="colors must be"):
        renderer(sheet.vertices, sheet.faces, views, colors=torch.ones(5, 3))


def test_color_gradient_matches_finite_differences_and_a_batch_gets_its_own():
    sheet = Sheet(resolution=8).build()
    renderer = MitsubaRenderer(image_size=24, spp=32)
    views = Views.cat([overhead_views(), orbit_views(30.0, 60.0, 10.0)])
    weights = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    colors = torch.full((sheet.vertices.shape[0], 3), 0.5, requires_grad=True)
    seeds = [11, 12]
    (renderer(sheet.vertices, sheet.faces, views, seed=seeds, colors=colors)
     * weights).sum().backward()
    i, eps = 40, 0.05
    with torch.no_grad():
        plus, minus = colors.detach().clone(), colors.detach().clone()
        plus[i, 1] += eps
        minus[i, 1] -= eps
        fd = ((renderer(sheet.vertices, sheet.faces, views, seed=seeds, colors=plus)
               - renderer(sheet.vertices, sheet.faces, views, seed=seeds, colors=minus))
              * weights).sum() / (2 * eps)
    assert colors.grad[i, 1].item() == pytest.approx(fd.item(), rel=0.02)
    # batch gradient = sum of per-view gradients
    single = torch.zeros_like(colors)
    for b in range(2):
        c = colors.detach().clone().requires_grad_(True)
        (renderer(sheet.vertices, sheet.faces, views[b], seed=[seeds[b]], colors=c)
         * weights[b]).sum().backward()
        single += c.grad
    assert torch.allclose(single, colors.grad, rtol=1e-4, atol=1e-5)


def test_pytorch3d_renders_vertex_colors():
    pytest.importorskip("pytorch3d.renderer", reason="PyTorch3D is not installed (optional)")
    from lit3d.render.pytorch3d import PyTorch3DRenderer

    mesh = IcoSphere(subdivisions=3, radius=0.8).build()
    colors = torch.zeros(mesh.vertices.shape[0], 3)
    colors[:, 0] = 0.8  # red
    views = overhead_views()
    image = PyTorch3DRenderer(image_size=32)(mesh.vertices, mesh.faces, views, colors=colors)
    reference = MitsubaRenderer(image_size=32, spp=64)(mesh.vertices, mesh.faces, views,
                                                       colors=colors)
    centre = image[0, :, 16, 16]
    assert centre[0] > 0.1 and centre[1] < 1e-3
    assert (image - reference).abs().median() < 2e-3


def test_vertex_colors_start_at_the_albedo_and_smoothness_is_the_laplacian():
    colors = VertexColors(10, albedo=0.3)
    assert torch.allclose(colors(), torch.full((10, 3), 0.3), atol=1e-6)
    sheet = Sheet(resolution=4).build()
    edges = edges_from_faces(sheet.faces)
    flat = torch.full((sheet.vertices.shape[0], 3), 0.4)
    assert color_smoothness(flat, edges).item() == pytest.approx(0.0, abs=1e-12)
    noisy = flat + 0.1 * torch.randn_like(flat)
    assert color_smoothness(noisy, edges) > 0
    with pytest.raises(ValueError, match="albedo"):
        VertexColors(3, albedo=1.0)


def test_mei3d_with_color_optimizes_both_and_reports_the_shape_only_response():
    pl.seed_everything(0)
    module = MEI3D(response_model=SimpleCell(input_size=32, orientation_deg=45.0, frequency=3.0),
                   renderer=MitsubaRenderer(image_size=32, spp=4), mesh=Sheet(resolution=12),
                   lambda_lap=10.0, lambda_edge=3.0, lambda_area=30.0, lambda_arap=1.0,
                   lr=0.01, eval_spp=16, color=True, lr_color=0.1)
    start = module.color.logits.detach().clone()
    pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
               limit_val_batches=0).fit(module, datamodule=ViewsDataModule(steps_per_epoch=20))
    assert not torch.equal(module.color.logits, start)
    result = module.final_evaluation(num_seeds=1)
    assert result["normalized_response"] > result["normalized_response_shape_only"]
    assert result["normalized_response"] > 0.5
    assert "color" in module.regularizers(module.vertices())
    # the best state (restored at the end) includes the colours
    assert "color.logits" in module.best_state
    assert torch.equal(module.best_state["color.logits"], module.color.logits)


@pytest.mark.slow
def test_simple_cell_with_color_is_at_least_as_good_as_shape_only(tmp_path):
    """The acceptance criterion on the default config: with colour on, the normalized response is
    at least the same mesh's shape-only response, and at least the shape-only criterion
    (0.9)."""
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", "configs/mei3d_simple_cell.yaml",
         "--model.init_args.color", "true", "--trainer.logger.init_args.save_dir", str(tmp_path),
         "--trainer.enable_progress_bar", "false"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "mei3d_simple_cell" / "version_0" / "metrics.json")
                         .read_text())
    print(metrics)
    assert metrics["normalized_response"] >= metrics["normalized_response_shape_only"]
    assert metrics["normalized_response"] >= 0.9
