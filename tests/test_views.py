"""Views and the datamodule: scene geometry, jitter, batching."""

import math
from types import SimpleNamespace

import pytest
import torch

from lit3d.data.datamodule import ViewsDataModule
from lit3d.data.views import (
    Views,
    jitter_directions,
    orbit_views,
    overhead_views,
    spherical_to_cartesian,
)


def test_spherical_convention():
    assert torch.allclose(spherical_to_cartesian(0.0, 0.0, 2.0), torch.tensor([2.0, 0, 0]),
                          atol=1e-6)
    assert torch.allclose(spherical_to_cartesian(90.0, 0.0), torch.tensor([0.0, 1, 0]), atol=1e-6)
    assert torch.allclose(spherical_to_cartesian(0.0, 90.0), torch.tensor([0.0, 0, 1]), atol=1e-6)


def test_overhead_view_matches_the_paper_setup():
    views = overhead_views(num_views=2, camera_distance=10.0, light_azimuth_deg=45.0,
                           light_elevation_deg=75.0, light_distance=10.0)
    assert len(views) == 2
    assert torch.equal(views.camera_position[0], torch.tensor([0.0, 0.0, 10.0]))
    assert torch.equal(views.camera_up[0], torch.tensor([0.0, 1.0, 0.0]))
    light = views.light_position[0]
    assert light.norm().item() == pytest.approx(10.0, rel=1e-6)
    assert math.degrees(math.asin(light[2].item() / 10.0)) == pytest.approx(75.0, abs=1e-3)
    assert light[0].item() == pytest.approx(light[1].item())  # azimuth 45°
    with pytest.raises(ValueError, match="fov"):
        overhead_views(fov_deg=0.0)


def test_orbit_views_up_vector_and_light_at_camera():
    views = orbit_views(torch.tensor([0.0, 30.0]), torch.tensor([90.0, 20.0]))
    assert torch.equal(views.camera_up[0], torch.tensor([0.0, 1.0, 0.0]))  # pole: +y
    assert torch.equal(views.camera_up[1], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(views.light_position, views.camera_position)


def test_views_index_cat_and_dicts():
    views = Views.cat([overhead_views(), orbit_views(10.0, 20.0)])
    assert len(views) == 2 and len(views[1]) == 1
    assert torch.equal(views[1].camera_position, views.camera_position[1:])
    dicts = views.as_dicts()
    assert dicts[0]["camera_position"] == [0.0, 0.0, 10.0]
    assert isinstance(dicts[0]["fov_deg"], float)


def test_jitter_keeps_distance_and_tilts_by_the_requested_angle():
    g = torch.Generator().manual_seed(0)
    position = torch.tensor([[0.0, 0.0, 10.0]]).repeat(4000, 1)
    jittered = jitter_directions(position, torch.zeros_like(position), 5.0, g)
    assert torch.allclose(jittered.norm(dim=-1), torch.full((4000,), 10.0), rtol=1e-5)
    angles = torch.rad2deg(torch.acos((jittered[:, 2] / 10.0).clamp(-1, 1)))
    # |N(0, 5°)| has mean 5·sqrt(2/π) = 3.99°.
    assert angles.mean().item() == pytest.approx(5.0 * math.sqrt(2 / math.pi), rel=0.05)
    assert torch.equal(jitter_directions(position, torch.zeros_like(position), 0.0, g), position)


def test_datamodule_jitters_only_training_batches_reproducibly():
    dm = ViewsDataModule(jitter_camera_deg=3.0, jitter_light_deg=3.0, steps_per_epoch=4)
    batch = next(iter(dm.train_dataloader()))
    assert len(dm.train_dataloader()) == 4 and len(batch) == 1

    def transfer(training, step, rank=0):
        dm.trainer = SimpleNamespace(training=training, global_step=step, global_rank=rank)
        return dm.on_after_batch_transfer(batch, 0)

    a, b = transfer(True, 7), transfer(True, 7)
    assert torch.equal(a.camera_position, b.camera_position)
    assert not torch.equal(a.camera_position, batch.camera_position)
    assert not torch.equal(transfer(True, 8).light_position, a.light_position)
    assert not torch.equal(transfer(True, 7, rank=1).camera_position, a.camera_position)
    assert transfer(False, 7) is batch  # validation sees the canonical view


@pytest.mark.parametrize("kwargs", [dict(steps_per_epoch=0), dict(batch_size=0),
                                    dict(jitter_camera_deg=-1.0), dict(cameras="fibonacci")])
def test_datamodule_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ViewsDataModule(**kwargs)
