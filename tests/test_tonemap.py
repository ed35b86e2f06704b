"""Display transforms: Reinhard and the sRGB curve."""

import torch

from lit3d.render.tonemap import display, reinhard, srgb_decode, srgb_encode


def test_srgb_curve_matches_the_standard_and_inverts():
    x = torch.tensor([0.0, 0.002, 0.0031308, 0.18, 0.5, 1.0, 2.0])
    expected = torch.tensor([0.0, 0.02584, 0.04045, 0.46135, 0.73536, 1.0, 1.0])
    assert torch.allclose(srgb_encode(x), expected, atol=1e-4)
    y = torch.linspace(0, 1, 101)
    assert torch.allclose(srgb_encode(srgb_decode(y)), y, atol=1e-5)


def test_reinhard_and_display_are_bounded_monotonic_and_differentiable():
    radiance = torch.tensor([0.0, 0.5, 1.0, 10.0, 1000.0], requires_grad=True)
    assert torch.allclose(reinhard(radiance), radiance / (1 + radiance))
    shown = display(radiance)
    assert (shown[1:] > shown[:-1]).all() and shown.max() < 1 and shown.min() >= 0
    shown.sum().backward()
    assert torch.isfinite(radiance.grad).all() and (radiance.grad[1:] > 0).all()
