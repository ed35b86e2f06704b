"""Renderers: contract, scene conventions, radiance, gradients vs finite differences, PyTorch3D."""

import math
import sys

import pytest
import torch

from lit3d.data.views import Views, orbit_views, overhead_views
from lit3d.geometry.primitives import IcoSphere, Sheet
from lit3d.render.llvm import MIN_LLVM_MAJOR, check_libllvm, find_libllvm
from lit3d.render.mitsuba import MitsubaRenderer


@pytest.fixture(scope="module")
def sphere():
    return IcoSphere(subdivisions=2, radius=1.0).build()


def assert_same_gradient(got: torch.Tensor, expected: torch.Tensor) -> None:
    """``got`` equals the non-zero ``expected`` up to float rounding (relative to its largest
    entry): the tolerance of two computations of one gradient."""
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def small_renderer(environment: bool, spp: int = 2, **options) -> MitsubaRenderer:
    """A 24-pixel renderer of the point-light scene, or (``environment``) of MRD's scene lit by
    a sun sky; ``options`` go to the renderer."""
    from lit3d.render.environment import SunSky
    from lit3d.render.mitsuba import MitsubaEnvironmentRenderer

    if environment:
        return MitsubaEnvironmentRenderer(image_size=24, spp=spp, environment_resolution=16,
                                          environment=SunSky(sun_radiance=50.0), **options)
    return MitsubaRenderer(image_size=24, spp=spp, **options)


def blob_centre(image: torch.Tensor, threshold: float) -> tuple[float, float]:
    rows, cols = torch.nonzero(image.mean(0) > threshold, as_tuple=True)
    return rows.float().mean().item(), cols.float().mean().item()


@pytest.mark.parametrize("path,major", [
    ("/usr/lib/x86_64-linux-gnu/libLLVM-19.so", 19),
    ("/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1", 19),
    ("/usr/lib/libLLVM-15.so.1", 15), ("/usr/lib/llvm-18/lib/libLLVM.so", 18),
    ("/opt/lib/libLLVM.dylib", None)])
def test_libllvm_version_parsing(path, major):
    from lit3d.render.llvm import _major_version

    assert _major_version(path) == major


def test_libllvm_is_recent_enough():
    assert find_libllvm() is not None
    assert check_libllvm()[0] >= MIN_LLVM_MAJOR


def test_output_contract_and_background(sphere):
    renderer = MitsubaRenderer(image_size=32, spp=4, background=0.3)
    views = Views.cat([overhead_views(), orbit_views(30.0, 20.0)])
    images = renderer(sphere.vertices * 0.3, sphere.faces, views, seed=0)
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert images[:, :, 0, 0] == pytest.approx(0.3, abs=1e-5)  # corner: the grey background
    with pytest.raises(ValueError, match="meshes for 2 views"):
        renderer(sphere.vertices.expand(3, -1, -1), sphere.faces, views)


def test_world_axes_map_to_image_axes(sphere):
    """Overhead camera: world +x is image right, world +y is image up (row 0 is the top)."""
    renderer = MitsubaRenderer(image_size=32, spp=4)
    small = sphere.vertices * 0.25
    right = renderer(small + torch.tensor([0.8, 0.0, 0.0]), sphere.faces, overhead_views())[0]
    up = renderer(small + torch.tensor([0.0, 0.8, 0.0]), sphere.faces, overhead_views())[0]
    row, col = blob_centre(right, 0.5)
    assert col > 24 and abs(row - 15.5) < 2
    row, col = blob_centre(up, 0.5)
    assert row < 8 and abs(col - 15.5) < 2


def test_flat_sheet_radiance_matches_lambert_point_light():
    """Centre pixel of a sheet: albedo·I·cosθ/(π r²) from the light + albedo·background."""
    mesh = Sheet(resolution=8, size=2.0).build()
    # Many samples: the radiance varies across the pixel, so few samples average it noisily.
    renderer = MitsubaRenderer(image_size=33, spp=512, albedo=0.8, background=0.3)
    views = overhead_views(light_elevation_deg=60.0, light_distance=5.0, light_intensity=50.0)
    image = renderer(mesh.vertices, mesh.faces, views)[0]
    cos_theta = math.sin(math.radians(60.0))
    expected = 0.8 * 50.0 * cos_theta / (math.pi * 5.0**2) + 0.8 * 0.3
    assert image[:, 16, 16] == pytest.approx(torch.full((3,), expected), rel=1e-3)


def test_same_seed_reproduces_and_per_view_meshes(sphere):
    renderer = MitsubaRenderer(image_size=24, spp=2)
    views = Views.cat([overhead_views(), overhead_views()])
    a = renderer(sphere.vertices, sphere.faces, views, seed=5)
    b = renderer(sphere.vertices, sphere.faces, views, seed=5)
    assert torch.equal(a, b)
    per_view = torch.stack([sphere.vertices, sphere.vertices * 0.5])
    c = renderer(per_view, sphere.faces, views, seed=5)
    assert torch.allclose(c[0], a[0]) and not torch.allclose(c[1], a[1])


@pytest.mark.parametrize("environment", [False, True], ids=["point_light", "environment"])
def test_a_batch_of_views_has_the_gradients_of_its_views_one_by_one(sphere, environment):
    """Mitsuba differentiates by rendering again in the backward pass with the scene as it is
    then: a batch must not take every view's gradient with the last view's camera."""
    from lit3d.data.views import fibonacci_views

    renderer = small_renderer(environment)
    views = fibonacci_views(8, 4.0, 40.0)
    weights = torch.linspace(0, 1, 3 * 24 * 24).view(3, 24, 24)

    def gradient(index, seeds):
        v = sphere.vertices.clone().requires_grad_(True)
        images = renderer(v, sphere.faces, views[torch.tensor(index)], seed=seeds)
        (images * weights).sum().backward()
        return v.grad, images.detach()

    batch, images = gradient([4, 0, 6], [11, 22, 33])
    singles = [gradient([i], [s]) for i, s in [(4, 11), (0, 22), (6, 33)]]
    for b, (_, image) in enumerate(singles):
        assert torch.equal(images[b], image[0])  # per-view seeds: same samples
    total = sum(g for g, _ in singles)
    assert total.abs().max() > 0
    torch.testing.assert_close(batch, total, rtol=1e-4, atol=1e-4 * float(total.abs().max()))


def test_deterministic_mode_runs_mitsuba_on_one_thread_and_reproduces_gradients(sphere):
    import drjit as dr

    renderer = MitsubaRenderer(image_size=32, spp=4)
    views = overhead_views()

    def gradient():
        v = sphere.vertices.clone().requires_grad_(True)
        (renderer(v, sphere.faces, views, seed=1) * torch.rand(3, 32, 32,
         generator=torch.Generator().manual_seed(0))).sum().backward()
        return v.grad

    renderer(sphere.vertices, sphere.faces, views)
    default = dr.thread_count()
    torch.use_deterministic_algorithms(True)
    try:
        first = gradient()
        assert dr.thread_count() == 1
        assert all(torch.equal(first, gradient()) for _ in range(3))
    finally:
        torch.use_deterministic_algorithms(False)
    renderer(sphere.vertices, sphere.faces, views)
    assert dr.thread_count() == default


def _weighted_loss(renderer, faces, views, weights):
    return lambda v: (renderer(v, faces, views, seed=3).double() * weights).sum()


def test_interior_vertex_gradient_matches_finite_differences(sphere):
    # The AD gradient is itself a Monte Carlo estimate: enough samples to make it precise.
    renderer = MitsubaRenderer(image_size=64, spp=128)
    views = overhead_views()
    weights = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).double()
    loss = _weighted_loss(renderer, sphere.faces, views, weights)
    top = int(torch.argmax(sphere.vertices[:, 2]))  # faces the camera: shading gradient only
    v = sphere.vertices.clone().requires_grad_(True)
    loss(v).backward()
    eps = 0.02
    delta = torch.zeros_like(sphere.vertices)
    delta[top, 2] = eps
    fd = ((loss(sphere.vertices + delta) - loss(sphere.vertices - delta)) / (2 * eps)).item()
    assert abs(fd) > 10  # a real signal
    assert v.grad[top, 2].item() == pytest.approx(fd, rel=0.1)


def test_projective_integrator_differentiates_silhouettes():
    """d(mean image)/d(sphere scale) with a dark sphere on a bright background is dominated by
    the moving silhouette: ``direct_projective`` matches finite differences, ``prb`` (no
    silhouette term) does not even get the sign."""
    sphere = IcoSphere(subdivisions=3, radius=1.0).build()
    views = overhead_views()
    gradients = {}
    for integrator in ("direct_projective", "prb"):
        renderer = MitsubaRenderer(image_size=64, spp=16, integrator=integrator, albedo=0.2,
                                   background=1.0)

        def loss(scale, renderer=renderer):
            return renderer(sphere.vertices * scale, sphere.faces, views, seed=3).double().mean()

        scale = torch.tensor(0.7, requires_grad=True)
        loss(scale).backward()
        gradients[integrator] = scale.grad.item()
    fd = ((loss(torch.tensor(0.72)) - loss(torch.tensor(0.68))) / 0.04).item()
    assert fd < -0.3  # growing a dark disk on a bright background darkens the image
    assert gradients["direct_projective"] == pytest.approx(fd, rel=0.05)
    assert gradients["prb"] > 0


def test_pytorch3d_missing_gives_install_instructions(monkeypatch):
    from lit3d.render.pytorch3d import PyTorch3DRenderer

    monkeypatch.setitem(sys.modules, "pytorch3d", None)
    monkeypatch.setitem(sys.modules, "pytorch3d.renderer", None)
    with pytest.raises(ImportError, match="INSTALL.md"):
        PyTorch3DRenderer()


def test_pytorch3d_and_mitsuba_render_the_same_scene():
    pytest.importorskip("pytorch3d.renderer", reason="PyTorch3D is not installed (optional)")
    from lit3d.render.pytorch3d import PyTorch3DRenderer

    mesh = IcoSphere(subdivisions=4, radius=0.8).build()
    # An asymmetric ellipsoid off-centre, so a flipped axis or mirrored image would show.
    vertices = mesh.vertices * torch.tensor([1.0, 0.7, 1.0]) + torch.tensor([0.2, 0.1, 0.0])
    views = Views.cat([overhead_views(), orbit_views(-60.0, 35.0)])
    mitsuba = MitsubaRenderer(image_size=64, spp=64)(vertices, mesh.faces, views)
    pytorch3d = PyTorch3DRenderer(image_size=64)(vertices, mesh.faces, views)
    difference = (mitsuba - pytorch3d).abs()
    assert difference.mean().item() < 0.005
    assert difference.median().item() < 1e-3
    # What differs is the silhouette (Mitsuba averages over the pixel, PyTorch3D samples its
    # centre): 99% of pixels agree within 0.05.
    assert difference.flatten().quantile(0.99).item() < 0.05
    assert mitsuba.mean().item() == pytest.approx(pytorch3d.mean().item(), rel=0.01)


def test_pytorch3d_gradients_flow():
    pytest.importorskip("pytorch3d.renderer", reason="PyTorch3D is not installed (optional)")
    from lit3d.render.pytorch3d import PyTorch3DRenderer

    mesh = IcoSphere(subdivisions=2, radius=0.8).build()
    v = mesh.vertices.clone().requires_grad_(True)
    PyTorch3DRenderer(image_size=32)(v, mesh.faces, overhead_views()).mean().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_renderer_pickles_without_its_scene(sphere):
    import pickle

    renderer = MitsubaRenderer(image_size=16, spp=2)
    before = renderer(sphere.vertices, sphere.faces, overhead_views(), seed=1)
    clone = pickle.loads(pickle.dumps(renderer))
    assert clone._scene is None and clone.image_size == 16
    assert torch.equal(clone(sphere.vertices, sphere.faces, overhead_views(), seed=1), before)


@pytest.mark.parametrize("integrator", ["prb", "direct_projective", "prb_projective"])
def test_replayed_kernels_render_and_differentiate_like_traced_ones(sphere, integrator):
    """``freeze=True`` records the Dr.Jit kernels on the first render and replays them (of the
    projective integrators' backward pass, the shading term): over a sequence that changes
    camera, field of view, light, vertices, seed and spp, the images and vertex gradients equal
    those of a renderer that traces every render."""
    from lit3d.data.views import fibonacci_views

    views = fibonacci_views(6, 4.0, 40.0)
    views.fov_deg[3:] = 25.0
    views.light_position[1::2] *= 0.7
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    frozen = MitsubaRenderer(image_size=24, spp=2, integrator=integrator, freeze=True)
    traced = MitsubaRenderer(image_size=24, spp=2, integrator=integrator, freeze=False)

    def step(renderer, k):
        v = (sphere.vertices * (1 + 0.05 * k)).requires_grad_(True)
        index = torch.tensor([k % 6, (k + 3) % 6])
        images = renderer(v, sphere.faces, views[index], seed=k, spp=(2, 4)[k % 2])
        (images * weights).sum().backward()
        return images.detach(), v.grad

    recordings = []
    for k in range(8):
        (image_f, grad_f), (image_t, grad_t) = step(frozen, k), step(traced, k)
        recordings.append(frozen._kernels.recordings[0])
        torch.testing.assert_close(image_f, image_t, rtol=0, atol=1e-6)
        assert_same_gradient(grad_f, grad_t)
    assert traced._kernels.recordings == (0, 0, 0)
    # Recorded while the film and the sample counts are new, then only replayed.
    assert recordings[3] == recordings[-1], recordings
    assert 0 < frozen._kernels.recordings[1] <= recordings[-1]


@pytest.mark.parametrize("options", [{"shading_spp": 2, "silhouette_spp": 1},
                                     {"integrator_options": {"sppc": 0}}],
                         ids=["fewer_gradient_samples", "no_shading_term"])
def test_the_replayed_shading_adjoint_gives_the_traced_gradients(sphere, options):
    """A projective integrator's adjoint with its shading term replayed from recorded kernels
    gives the gradients of the whole adjoint traced (Mitsuba's ``render_backward``), with
    fewer gradient samples per term and with the shading term switched off."""
    from lit3d.data.views import fibonacci_views

    views = fibonacci_views(4, 4.0, 40.0)
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    replayed, traced = (small_renderer(True, spp=4, **options) for _ in range(2))
    traced.replay_shading_adjoint = False

    def gradient(renderer, k: int, seed: int) -> torch.Tensor:
        v = (sphere.vertices * (1 + 0.05 * k)).requires_grad_(True)
        images = renderer(v, sphere.faces, views[torch.tensor([k])], seed=seed)
        (images * weights).sum().backward()
        return v.grad

    for k in range(4):
        assert_same_gradient(gradient(replayed, k, k), gradient(traced, k, k))
    shading_recorded = replayed._kernels.recordings[1] > 0
    assert shading_recorded == ("shading_spp" in options)
    # Switched off on the renderer that replayed: its traced adjoint has every term again.
    replayed.replay_shading_adjoint = False
    assert_same_gradient(gradient(replayed, 0, 7), gradient(traced, 0, 7))


def test_the_replayed_shading_adjoint_shades_each_sample_once(sphere):
    """The shading adjoint splats zeros carrying the samples' gradients, so one kernel over the
    samples shades them (the adjoint's); Mitsuba's traced adjoint runs a second one that
    shades every sample to splat the derivative image's value, which nobody reads. (Dr.Jit's
    kernel history of a backward pass with the silhouette term off; a kernel that shades has
    over a thousand operations, the splat of positions alone a few dozen.)"""
    import drjit as dr

    from lit3d.data.views import fibonacci_views

    views = fibonacci_views(4, 4.0, 40.0)

    def shading_kernels(replay: bool) -> int:
        renderer = MitsubaRenderer(image_size=24, spp=2, integrator_options={"sppp": 0})
        renderer.replay_shading_adjoint = replay
        for k in range(3):  # recorded, then replayed
            v = sphere.vertices.clone().requires_grad_(True)
            images = renderer(v, sphere.faces, views[torch.tensor([k])], seed=k)
            dr.kernel_history()  # clears it
            dr.set_flag(dr.JitFlag.KernelHistory, True)
            try:
                images.sum().backward()
            finally:
                dr.set_flag(dr.JitFlag.KernelHistory, False)
            history = dr.kernel_history()
        return sum(1 for kernel in history if kernel.get("size") == 24 * 24 * 2
                   and (kernel.get("operation_count") or 0) > 200)

    assert shading_kernels(replay=True) == 1
    assert shading_kernels(replay=False) == 2


@pytest.mark.parametrize("environment", [False, True], ids=["point_light", "environment"])
def test_reusing_the_forward_scene_state_gives_the_same_images_and_gradients(sphere,
                                                                            environment):
    """The backward pass reuses the scene state its forward pass left (no second buffer update)
    only when nothing rendered in between: over steps of one view, a batch, another mesh
    rendered between forward and backward, and per-vertex colours, images and vertex/colour
    gradients equal those of a renderer that sets the state again every time."""
    from lit3d.data.views import fibonacci_views

    reusing, resetting = small_renderer(environment), small_renderer(environment)
    resetting.reuse_forward_state = False
    views = fibonacci_views(6, 4.0, 40.0)
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    updates = {}

    def counting(renderer, name):
        original = renderer._set_buffer

        def set_buffer(*args, **kwargs):
            updates[name] = updates.get(name, 0) + 1
            return original(*args, **kwargs)

        renderer._set_buffer = set_buffer

    counting(reusing, "reusing")
    counting(resetting, "resetting")

    def step(renderer, k):
        v = (sphere.vertices * (1 + 0.05 * k)).requires_grad_(True)
        colors = torch.full_like(sphere.vertices, 0.6).requires_grad_(k == 3)
        index = torch.tensor([k % 6] if k != 2 else [1, 4])
        images = renderer(v, sphere.faces, views[index], seed=k,
                          colors=colors if k == 3 else None)
        if k == 4:  # another render on the same renderer before the backward pass
            renderer(0.7 * sphere.vertices, sphere.faces, views[torch.tensor([0])], seed=9)
        (images * weights).sum().backward()
        return images.detach(), v.grad, colors.grad

    for k in range(6):
        (image_r, grad_r, color_r), (image_s, grad_s, color_s) = step(reusing, k), step(
            resetting, k)
        torch.testing.assert_close(image_r, image_s, rtol=0, atol=0)
        assert grad_s.abs().max() > 0
        torch.testing.assert_close(grad_r, grad_s, rtol=1e-5, atol=1e-6 * float(grad_s.abs().max()))
        if k == 3:
            assert color_s.abs().max() > 0
            torch.testing.assert_close(color_r, color_s, rtol=1e-5,
                                       atol=1e-6 * float(color_s.abs().max()))
    # Steps 0, 1, 5 of one view each skip the backward's update; step 2's two views update
    # again for the earlier view only; step 3 (colours) skips two; step 4 renders in between.
    assert updates["resetting"] - updates["reusing"] == 3 + 1 + 2, updates


@pytest.mark.parametrize("environment", [False, True], ids=["point_light", "environment"])
def test_unchanged_buffers_are_not_set_again(sphere, environment):
    """Views of one mesh one after another (figures, sweeps) hand its vertices (and colours) to
    the scene once: over views one at a time and in a batch, another mesh, a tracked render
    with its backward pass, and colours that stay and change, images and gradients equal those
    of a renderer that sets every buffer every time, with fewer buffer updates."""
    from lit3d.data.views import fibonacci_views

    def make(reuse: bool):
        renderer = small_renderer(environment)
        renderer.reuse_unchanged_buffers = reuse
        return renderer

    views = fibonacci_views(4, 4.0, 40.0)  # fields of view differ too: applied on every view
    views = views.replace(fov_deg=torch.tensor([40.0, 30.0, 50.0, 35.0]))
    a, b = sphere.vertices, 0.8 * sphere.vertices
    red, blue = torch.full_like(a, 0.2), torch.full_like(a, 0.2)
    red[:, 0], blue[:, 2] = 0.9, 0.9
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))

    def run(renderer) -> list[torch.Tensor]:
        out = []
        with torch.no_grad():
            out += [renderer(a, sphere.faces, views[torch.tensor([k])], seed=k) for k in range(4)]
            out.append(renderer(a.clone(), sphere.faces, views, seed=4))  # equal values, batch
            out.append(renderer(b, sphere.faces, views[torch.tensor([0])], seed=5))
            out.append(renderer(a, sphere.faces, views[torch.tensor([3])], seed=10))
        v = (0.9 * a).requires_grad_(True)  # the scene then holds other values than a's
        image = renderer(v, sphere.faces, views[torch.tensor([1])], seed=6)
        (image * weights).sum().backward()
        out += [image.detach(), v.grad]
        with torch.no_grad():
            out.append(renderer(a, sphere.faces, views[torch.tensor([2])], seed=7))
            out += [renderer(a, sphere.faces, views[torch.tensor([k])], seed=8 + k, colors=c)
                    for k, c in enumerate((red, red.clone(), blue))]
        return out

    reusing, plain = make(True), make(False)
    for got, expected in zip(run(reusing), run(plain)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # Set every time: 4 + 4 views, b, a, the tracked forward (its backward reuses it), a
    # again, then positions and colours of 3 views: 18. Reused: a once for the first 8 views,
    # b, a, 0.9 a tracked, a again, the coloured scene's first view (positions and red), blue: 8.
    assert (reusing.buffer_updates, plain.buffer_updates) == (8, 18)


def test_a_render_of_another_mesh_between_forward_and_backward_keeps_the_gradient(sphere):
    """The backward pass rebuilds the scene of its own mesh when one of another topology was
    rendered in between (it used to set these vertices into the other mesh's scene)."""
    other = IcoSphere(subdivisions=1, radius=0.7).build()
    views = overhead_views()
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))

    def gradient(between: bool):
        renderer = MitsubaRenderer(image_size=24, spp=2)
        v = sphere.vertices.clone().requires_grad_(True)
        images = renderer(v, sphere.faces, views, seed=3)
        if between:
            renderer(other.vertices, other.faces, views, seed=9)
        (images * weights).sum().backward()
        return v.grad

    alone = gradient(False)
    assert alone.abs().max() > 0
    torch.testing.assert_close(gradient(True), alone, rtol=1e-5,
                               atol=1e-6 * float(alone.abs().max()))


@pytest.mark.parametrize("option", ["silhouette_spp", "shading_spp"])
def test_fewer_gradient_samples_estimate_the_same_gradient(sphere, option):
    """``silhouette_spp`` / ``shading_spp`` lower the sample count of one gradient term of the
    projective integrator only: the image is unchanged, the gradient equals the default's when
    the count equals ``spp``, and with fewer samples it (mean over seeds) points the same way."""
    weights = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))

    def gradient(renderer, seeds):
        total = 0
        for seed in seeds:
            v = sphere.vertices.clone().requires_grad_(True)
            (renderer(v, sphere.faces, overhead_views(), seed=seed) * weights).sum().backward()
            total = total + v.grad
        return total / len(seeds)

    default = MitsubaRenderer(image_size=32, spp=8)
    same = MitsubaRenderer(image_size=32, spp=8, **{option: 8})
    fewer = MitsubaRenderer(image_size=32, spp=8, **{option: 2})
    torch.testing.assert_close(fewer(sphere.vertices, sphere.faces, overhead_views(), seed=3),
                               default(sphere.vertices, sphere.faces, overhead_views(), seed=3),
                               rtol=0, atol=0)
    full = gradient(default, range(4))
    torch.testing.assert_close(gradient(same, range(4)), full, rtol=1e-3,
                               atol=1e-4 * float(full.abs().max()))
    cosine = torch.nn.functional.cosine_similarity(gradient(fewer, range(4)).flatten(),
                                                   full.flatten(), dim=0)
    assert cosine > 0.95, float(cosine)
    with pytest.raises(ValueError, match="projective"):
        MitsubaRenderer(integrator="prb", **{option: 2})


def test_the_gpu_checks_reference_image_is_what_the_cpu_renders():
    """``tests/data/llvm_sphere.pt`` (the CUDA check's reference, ``tests/gpu_reference.py``)
    is the image the LLVM back-end renders today."""
    from gpu_reference import REFERENCE, render_on_cpu

    torch.testing.assert_close(render_on_cpu(), torch.load(REFERENCE), rtol=0, atol=1e-4)


@pytest.mark.parametrize("integrator", ["direct_projective", "prb_projective"])
@pytest.mark.parametrize("environment", [False, True], ids=["point_light", "environment"])
def test_stored_silhouette_samples_give_the_same_images_and_gradients(sphere, environment,
                                                                      integrator):
    """Projective integrators with their primary-silhouette samples stored (the default: their
    radiance differences from recorded kernels) and with Mitsuba's own schedule (traced): equal
    images, vertex gradients equal up to float rounding, and the silhouette term is part of
    them (the gradient changes without it)."""
    from lit3d.data.views import fibonacci_views

    def make(store: bool, **options):
        renderer = small_renderer(environment, spp=4, integrator=integrator, **options)
        renderer.store_silhouette_samples = store
        return renderer

    views = fibonacci_views(4, 4.0, 40.0)
    weights = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))

    def step(renderer, k):
        v = (sphere.vertices * (1 + 0.05 * k)).requires_grad_(True)
        images = renderer(v, sphere.faces, views[torch.tensor([k])], seed=k)
        (images * weights).sum().backward()
        return images.detach(), v.grad

    stored, plain = make(True), make(False)
    recordings = []
    for k in range(4):
        (image_s, grad_s), (image_p, grad_p) = step(stored, k), step(plain, k)
        torch.testing.assert_close(image_s, image_p, rtol=0, atol=0)
        assert_same_gradient(grad_s, grad_p)
        recordings.append(stored._kernels.recordings[2])
    from mitsuba.ad.projective import ProjectiveDetail

    assert type(stored._scene.integrator().proj_detail).__name__ == "StoredSilhouetteSamples"
    assert type(plain._scene.integrator().proj_detail) is ProjectiveDetail
    # The stored samples' radiance differences came from kernels recorded once, then replayed
    # for other views and vertices (other silhouettes); Mitsuba's schedule traces them.
    assert recordings[0] >= 1 and recordings[1] == recordings[-1], recordings
    assert plain._kernels.recordings[2] == 0
    # without the silhouette term (sppp 0) the gradient differs: the comparison covered it
    no_silhouette = make(True, integrator_options={"sppp": 0})
    _, grad_n = step(no_silhouette, 3)
    assert float((grad_n - grad_s).abs().max()) > 0.05 * float(grad_s.abs().max())


def test_the_garbage_collector_is_paused_while_dr_jit_renders(sphere):
    """Collecting Mitsuba objects inside a frozen render aborted a process: the cyclic collector
    is off during the primal and adjoint calls and on again after them."""
    import gc

    renderer = MitsubaRenderer(image_size=16, spp=2)
    v = sphere.vertices.clone().requires_grad_(True)
    renderer(v, sphere.faces, overhead_views()[:1], seed=0)  # builds the scene and kernels
    seen = []
    kernels = renderer._kernels
    primal, adjoint = kernels._primal, kernels._adjoint
    kernels._primal = lambda *a: seen.append(("primal", gc.isenabled())) or primal(*a)
    kernels._adjoint = lambda *a: seen.append(("adjoint", gc.isenabled())) or adjoint(*a)
    assert gc.isenabled()
    renderer(v, sphere.faces, overhead_views()[:1], seed=1).sum().backward()
    assert seen == [("primal", False), ("adjoint", False)] and gc.isenabled()
