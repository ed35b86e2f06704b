"""CUDA checks (``pytest -m gpu``; skipped without a CUDA device, left out of the default run).

Mitsuba holds one variant per process, so these run in a process of their own (``-m gpu``):
``cuda_ad_rgb`` images against a stored ``llvm_ad_rgb`` one, gradients
against finite differences, replayed kernels against traced ones, a few training steps of every
module on the GPU, and the host round-trips of a 3D-MEI step, counted.
"""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from helpers import TinyNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning"),
]
CUDA = torch.device("cuda")


def gpu_trainer(tmp_path, callbacks=(), **kwargs) -> pl.Trainer:
    options = dict(accelerator="gpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path, callbacks=list(callbacks), num_sanity_val_steps=0)
    options.update(kwargs)
    return pl.Trainer(**options)


def sphere():
    from lit3d.geometry.primitives import IcoSphere

    return IcoSphere(subdivisions=2, radius=1.0).build()


def test_cuda_images_equal_llvm_images_within_monte_carlo_noise():
    """Against the ``llvm_ad_rgb`` render of the same scene stored in ``tests/data`` (a GPU
    machine may lack libLLVM; ``test_render`` checks the stored image is what the CPU renders
    today)."""
    from gpu_reference import REFERENCE, reference_scene
    from lit3d.render.mitsuba import MitsubaRenderer

    llvm = torch.load(REFERENCE)
    (vertices, faces), views, options = reference_scene()
    image = MitsubaRenderer(**options)(vertices.to(CUDA), faces.to(CUDA), views.to(CUDA), seed=1)
    assert image.device.type == "cuda" and image.shape == llvm.shape
    difference = (image.cpu() - llvm).abs()
    # 256 spp: the two back-ends draw different samples, so only the mean and the bulk agree.
    assert difference.mean() < 5e-3, float(difference.mean())
    assert difference.quantile(0.95) < 3e-2, float(difference.quantile(0.95))


def test_vertex_gradient_matches_finite_differences_on_cuda():
    from lit3d.data.views import overhead_views
    from lit3d.render.mitsuba import MitsubaRenderer

    mesh = sphere()
    vertices, faces = mesh.vertices.to(CUDA), mesh.faces.to(CUDA)
    renderer = MitsubaRenderer(image_size=64, spp=128)
    views = overhead_views().to(CUDA)
    weights = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).double()
    weights = weights.to(CUDA)

    def loss(v):
        return (renderer(v, faces, views, seed=3).double() * weights).sum()

    top = int(torch.argmax(vertices[:, 2]))
    v = vertices.clone().requires_grad_(True)
    loss(v).backward()
    assert v.grad.device.type == "cuda"
    eps = 0.02
    delta = torch.zeros_like(vertices)
    delta[top, 2] = eps
    fd = ((loss(vertices + delta) - loss(vertices - delta)) / (2 * eps)).item()
    assert abs(fd) > 10
    assert v.grad[top, 2].item() == pytest.approx(fd, rel=0.1)


@pytest.mark.parametrize("integrator", ["prb", "direct_projective"])
def test_replayed_kernels_equal_traced_ones_on_cuda(integrator):
    from lit3d.data.views import fibonacci_views
    from lit3d.render.mitsuba import MitsubaRenderer

    mesh = sphere()
    vertices, faces = mesh.vertices.to(CUDA), mesh.faces.to(CUDA)
    views = fibonacci_views(6, 4.0, 40.0).to(CUDA)
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0)).to(CUDA)
    frozen = MitsubaRenderer(image_size=24, spp=2, integrator=integrator, freeze=True)
    traced = MitsubaRenderer(image_size=24, spp=2, integrator=integrator, freeze=False)

    def step(renderer, k):
        v = (vertices * (1 + 0.05 * k)).requires_grad_(True)
        index = torch.tensor([k % 6, (k + 3) % 6], device=CUDA)
        images = renderer(v, faces, views[index], seed=k, spp=(2, 4)[k % 2])
        (images * weights).sum().backward()
        return images.detach(), v.grad

    for k in range(6):
        (image_f, grad_f), (image_t, grad_t) = step(frozen, k), step(traced, k)
        torch.testing.assert_close(image_f, image_t, rtol=0, atol=1e-5)
        assert grad_t.abs().max() > 0
        torch.testing.assert_close(grad_f, grad_t, rtol=1e-3,
                                   atol=1e-4 * float(grad_t.abs().max()))


def _mei3d(resolution: int = 12, **kwargs):
    from lit3d.geometry.primitives import Sheet
    from lit3d.models.cells import SimpleCell
    from lit3d.modules.mei3d import MEI3D
    from lit3d.render.mitsuba import MitsubaRenderer

    options = dict(response_model=SimpleCell(input_size=32, orientation_deg=45.0, frequency=3.0),
                   renderer=MitsubaRenderer(image_size=32, spp=4),
                   mesh=Sheet(resolution=resolution),
                   lambda_lap=10.0, lambda_edge=3.0, lambda_area=30.0, lambda_arap=1.0,
                   lr=0.005, lambda_repulsion=10.0, eval_spp=16)
    options.update(kwargs)
    return MEI3D(**options)


def test_mei3d_steps_run_on_the_gpu(tmp_path):
    from lit3d.data.datamodule import ViewsDataModule

    pl.seed_everything(0)
    module = _mei3d()
    gpu_trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(
        module, datamodule=ViewsDataModule(steps_per_epoch=10))
    assert all(p.device.type == "cuda" for p in module.parameters())
    assert torch.isfinite(module.vertices()).all()
    result = module.final_evaluation(num_seeds=1)
    assert result["self_intersections"] == 0.0 and result["normalized_response"] > 0


def test_population_steps_run_on_the_gpu(tmp_path):
    from lit3d.data.datamodule import ViewsDataModule
    from lit3d.geometry.primitives import Sheet
    from lit3d.models.cells import SimpleCell
    from lit3d.modules.mei3d_population import MEI3DPopulation
    from lit3d.render.mitsuba import MitsubaRenderer

    pl.seed_everything(0)
    module = MEI3DPopulation(SimpleCell(input_size=24, orientation_deg=[0.0, 90.0], frequency=3.0),
                             neurons=[0, 1], renderer=MitsubaRenderer(image_size=24, spp=2),
                             mesh=Sheet(resolution=10), lambda_lap=10.0, lambda_edge=3.0,
                             lambda_area=30.0, lambda_arap=1.0, lr=0.005, eval_spp=8)
    gpu_trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(
        module, datamodule=ViewsDataModule(steps_per_epoch=5))
    assert all(p.device.type == "cuda" for p in module.parameters())
    assert all(torch.isfinite(mesh.vertices).all() for mesh in module.meshes().values())


def test_mrd_shape_steps_and_a_remesh_run_on_the_gpu(tmp_path):
    from callbacks import DecayLROnRemesh, Remesh
    from lit3d.data.fibonacci import FibonacciViewsDataModule
    from lit3d.geometry.primitives import IcoSphere
    from lit3d.geometry.procedural import StarShape
    from lit3d.modules.mrd_shape import MRDShape
    from lit3d.render.environment import SunSky
    from lit3d.render.mitsuba import MitsubaEnvironmentRenderer

    pl.seed_everything(0)
    module = MRDShape(target=StarShape(lobes=4, amplitude=0.4, radius=0.8, subdivisions=3),
                      initial=IcoSphere(subdivisions=2, radius=1.0),
                      renderer=MitsubaEnvironmentRenderer(environment=SunSky(sun_radiance=200.0),
                                                          environment_resolution=32,
                                                          image_size=24, spp=2),
                      model=TinyNet(), loss="latent", lambda_=10.0, lr=0.05, target_spp=16,
                      eval_spp=8, chamfer_points=2000)
    gpu_trainer(tmp_path, [Remesh(epochs=[1], max_vertices=5000), DecayLROnRemesh(0.8)],
                max_epochs=2).fit(module, datamodule=FibonacciViewsDataModule(num_views=6,
                                                                              distance=4.0))
    assert module.remesh_count == 1 and module.shape.num_vertices > 400
    vertices = module.vertices()
    assert vertices.device.type == "cuda" and torch.isfinite(vertices).all()
    assert module.history[-1]["similarity"] is not None


def test_mrd_material_steps_run_on_the_gpu(tmp_path):
    from lit3d.data.turntable import TurntableViewsDataModule
    from lit3d.modules.mrd_material import MRDMaterial
    from lit3d.render.material_scene import MaterialRenderer
    from lit3d.render.materials import KnownPrincipled

    module = MRDMaterial(target=KnownPrincipled(base_color=(0.8, 0.35, 0.2), roughness=0.3,
                                                metallic=0.6),
                         parameters="base_color|roughness|metallic",
                         renderer=MaterialRenderer(image_size=24, spp=4, max_depth=3,
                                                   environment_resolution=32),
                         model=TinyNet(), lr=0.05, target_spp=16, eval_spp=8)
    before = max(module.parameter_errors().values())
    gpu_trainer(tmp_path, max_epochs=10, check_val_every_n_epoch=10).fit(
        module, datamodule=TurntableViewsDataModule(num_views=4))
    assert all(p.device.type == "cuda" for p in module.params.values())
    assert max(module.parameter_errors().values()) < before


def _host_copies_per_step(resolution: int, tmp_path: Path) -> float:
    """Device-to-host copies (CUDA memcpy DtoH, any library's: torch, Dr.Jit) per 3D-MEI
    training step, guard included, counted by the profiler: the copies of a 3-step fit
    subtracted from those of an 8-step fit, so set-up and end of fit cancel."""
    from torch.profiler import ProfilerActivity, profile

    from lit3d.data.datamodule import ViewsDataModule

    counts = []
    for steps in (3, 8):
        pl.seed_everything(0)
        module = _mei3d(resolution)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            gpu_trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(
                module, datamodule=ViewsDataModule(steps_per_epoch=steps))
            torch.cuda.synchronize()
        counts.append(sum(1 for e in prof.events()
                          if "memcpy" in e.name.lower() and "dtoh" in e.name.lower()))
    return (counts[1] - counts[0]) / 5


def test_host_round_trips_of_a_3d_mei_step_are_few_and_do_not_grow_with_the_mesh(tmp_path):
    """The exact self-intersection test and the repulsion's pair search run on the host in
    float64 (one copy of the vertices each); everything else stays on the GPU."""
    small, large = _host_copies_per_step(12, tmp_path), _host_copies_per_step(32, tmp_path)
    print(json.dumps({"dtoh_copies_per_step": {"sheet_12": small, "sheet_32": large}}))
    assert small == large
    assert small <= 32, small
