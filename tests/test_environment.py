"""MRD scene pieces: Fibonacci cameras, procedural environments, the environment-lit renderer."""

import math

import numpy as np
import pytest
import torch

from lit3d.data.views import fibonacci_directions, fibonacci_views, orbit_views
from lit3d.geometry.primitives import IcoSphere
from lit3d.render.backend import import_mitsuba
from lit3d.render.environment import (
    ConstantEnvironment,
    EnvironmentMap,
    SkyGradient,
    SunSky,
    latlong_directions,
)
from lit3d.render.mitsuba import MitsubaEnvironmentRenderer


def test_fibonacci_directions_are_unit_and_evenly_spread():
    d = fibonacci_directions(200)
    assert torch.allclose(d.norm(dim=1), torch.ones(200), atol=1e-6)
    assert d.mean(0).norm() < 0.02
    # Every cap of 10% of the sphere's area holds about 10% of the points.
    for axis in torch.eye(3):
        share = ((d @ axis) > 0.8).float().mean()
        assert share == pytest.approx(0.1, abs=0.02)
    nearest = torch.cdist(d, d).fill_diagonal_(9).min(1).values
    assert nearest.max() / nearest.min() < 2.5  # no clumps, no holes


def test_fibonacci_views_look_at_the_origin_with_the_light_off():
    views = fibonacci_views(25, distance=3.0, fov_deg=30.0)
    assert len(views) == 25
    assert torch.allclose(views.camera_position.norm(dim=1), torch.full((25,), 3.0))
    assert torch.equal(views.camera_target, torch.zeros(25, 3))
    assert (views.light_intensity == 0).all()
    with pytest.raises(ValueError):
        fibonacci_views(0)


def test_latlong_map_has_up_in_the_top_row():
    d = latlong_directions(16)
    assert d.shape == (16, 32, 3)
    assert (d[0, :, 2] > 0.99).all() and (d[-1, :, 2] < -0.99).all()
    assert np.allclose(np.linalg.norm(d, axis=-1), 1, atol=1e-5)


def test_procedural_environments():
    up, down = np.array([[0, 0, 1.0]]), np.array([[0, 0, -1.0]])
    sky = SkyGradient(zenith=2.0, horizon=0.5, ground=0.1)
    assert sky.radiance(up) == pytest.approx(2.0) and sky.radiance(down) == pytest.approx(0.1)
    sun = SunSky(sun_azimuth_deg=0.0, sun_elevation_deg=0.0, sun_radiance=50.0, zenith=1.0,
                 horizon=1.0, ground=0.0)
    assert sun.radiance(np.array([[1.0, 0, 0]])) == pytest.approx(50.0)
    assert sun.radiance(np.array([[0, 0.8, 0.6]])) == pytest.approx(1.0)
    assert ConstantEnvironment((1, 2, 3)).image(8).shape == (8, 16, 3)
    with pytest.raises(ValueError):
        ConstantEnvironment(-1.0)
    with pytest.raises(FileNotFoundError, match="environment map not found"):
        EnvironmentMap("/nonexistent/sky.exr")


@pytest.mark.parametrize("threads", [0, 1], ids=["default_threads", "one_thread"])
def test_environment_map_file_round_trips(tmp_path, threads):
    """Also with Dr.Jit on one thread (deterministic mode), where Mitsuba's EXR I/O would hang."""
    from lit3d.render.backend import bitmap_io_threads

    image = SkyGradient().image(16)
    path = tmp_path / "sky.exr"
    mi, dr = import_mitsuba("llvm_ad_rgb")
    default = dr.thread_count()
    try:
        if threads:
            dr.set_thread_count(threads)
        with bitmap_io_threads():
            mi.Bitmap(image).write(str(path))
        loaded = EnvironmentMap(path, scale=2.0).image()
        assert dr.thread_count() == (threads or default)
    finally:
        dr.set_thread_count(default)
    assert np.allclose(loaded, 2 * image, atol=1e-3)


def test_environment_lit_sphere_is_bright_on_top_and_sky_is_above_the_horizon():
    mesh = IcoSphere(subdivisions=3, radius=1.0).build()
    renderer = MitsubaEnvironmentRenderer(SkyGradient(zenith=2.0, horizon=0.5, ground=0.0),
                                          image_size=48, spp=16)
    image = renderer(mesh.vertices, mesh.faces, orbit_views(0.0, 0.0, 4.0, 40.0))[0]
    assert image[:, :3].mean() > 0.4 and image[:, -3:].mean() < 0.01  # sky above, ground below
    top, bottom = image[:, 15:19, 22:26].mean(), image[:, 29:33, 22:26].mean()
    assert top > 1.5 * bottom
    # A uniform white environment lights an unoccluded diffuse convex object to its albedo.
    white = MitsubaEnvironmentRenderer(ConstantEnvironment(1.0), image_size=48, spp=64,
                                       albedo=0.5)
    image = white(mesh.vertices, mesh.faces, orbit_views(30.0, 20.0, 4.0, 40.0))[0]
    assert image[:, 20:28, 20:28].mean().item() == pytest.approx(0.5, abs=0.02)
    assert image[:, :2, :2].mean().item() == pytest.approx(1.0, abs=0.02)
    views = fibonacci_views(3, distance=4.0, fov_deg=40.0)
    assert white(mesh.vertices, mesh.faces, views).shape == (3, 3, 48, 48)
    assert math.isfinite(float(image.sum()))

