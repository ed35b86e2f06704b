"""Simulated cells and preprocessing: known optima, invariances, channel-first inputs."""

import math

import pytest
import torch

from lit3d.models.cells import ComplexCell, SimpleCell, gabor, pixel_grid
from lit3d.models.preprocessing import ImageNormalizer, resize, to_grayscale


def one(value):
    return torch.tensor([float(value)])


def make_gabor(size=64, orientation=30.0, frequency=3.0, phase=0.0, sigma=0.15):
    return gabor(size, one(0), one(0), one(orientation), one(frequency), one(phase), one(sigma))[0]


def test_gabor_is_zero_mean_unit_norm():
    g = make_gabor()
    assert abs(g.mean().item()) < 1e-7
    assert g.norm().item() == pytest.approx(1.0, rel=1e-6)


def test_gabor_orientation_is_the_angle_of_the_bars():
    # Orientation 0: horizontal bars, constant along x near the centre (wide envelope).
    def along_y(g):  # variation down each column (rows = y)
        return g.std(dim=0).mean().item()

    def along_x(g):
        return g.std(dim=1).mean().item()

    g = make_gabor(orientation=0.0, sigma=10.0)
    assert along_y(g) > 100 * along_x(g)
    g = make_gabor(orientation=90.0, sigma=10.0)  # vertical bars
    assert along_x(g) > 100 * along_y(g)


def test_pixel_grid_x_right_y_up():
    x, y = pixel_grid(4)
    assert x[0, 0] < x[0, -1] and y[0, 0] > y[-1, 0]
    assert x[0, 0].item() == pytest.approx(-0.375)


def test_normalizer_fixed_norm_and_brightness_contrast_invariance():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 16, 16, generator=g)
    normalize = ImageNormalizer(mean=None, std=None, norm=25.0)
    out = normalize(images)
    assert torch.allclose(out.flatten(1).norm(dim=1), torch.full((3,), 25.0))
    assert torch.allclose(normalize(0.3 + 2.0 * images), out, atol=1e-4)
    fixed = ImageNormalizer(mean=0.5, std=0.2, norm=None)(images)
    assert torch.allclose(fixed, (images - 0.5) / 0.2)


def test_normalizer_per_channel_constants_are_channel_first():
    images = torch.zeros(1, 3, 4, 4)
    images[:, 0] = 1.0
    out = ImageNormalizer(mean=[1.0, 0.0, 0.0], std=[1.0, 2.0, 4.0], norm=None)(images)
    assert torch.all(out == 0)


def test_grayscale_uses_channel_dimension():
    images = torch.zeros(2, 3, 5, 7)
    images[:, 1] = 1.0  # pure green
    gray = to_grayscale(images)
    assert gray.shape == (2, 1, 5, 7)
    assert torch.allclose(gray, torch.full_like(gray, 0.7152))
    with pytest.raises(ValueError, match="channels"):
        to_grayscale(torch.zeros(1, 5, 7, 3).permute(0, 3, 1, 2)[:, :2])


def test_resize_is_noop_at_size_and_shrinks():
    x = torch.rand(1, 1, 32, 32)
    assert resize(x, 32) is x
    assert resize(x, 16).shape == (1, 1, 16, 16)


def test_resize_antialiases_only_when_shrinking():
    import torch.nn.functional as F

    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0))

    def bilinear(size, antialias):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                             antialias=antialias)

    up = resize(x, 56)
    assert torch.equal(up, bilinear((56, 56), False))
    assert torch.allclose(up, bilinear((56, 56), True), atol=1e-5)  # the same image
    assert torch.equal(resize(x, 16), bilinear((16, 16), True))
    assert torch.equal(resize(x, 32), bilinear((32, 32), True))  # taller, but narrower
    assert not torch.allclose(resize(x, 16), bilinear((16, 16), False), atol=1e-3)


def test_simple_cell_optimum_is_its_filter_and_bounds_all_images():
    cell = SimpleCell(input_size=32, orientation_deg=30.0, frequency=4.0, rectification="relu")
    optimum = cell(cell.optimal_images())
    assert optimum.shape == (1, 1)
    assert optimum.item() == pytest.approx(25.0, rel=1e-5)  # norm 25 x unit filter
    random = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.all(cell(random) <= optimum + 1e-4)
    # The filter's negative drives nothing through a ReLU.
    negative = 1.0 - cell.optimal_images()
    assert cell(negative).item() == pytest.approx(0.0, abs=1e-5)


def test_simple_cell_prefers_its_orientation_and_phase():
    cell = SimpleCell(input_size=32, orientation_deg=30.0, frequency=4.0)

    def stimulus(orientation, phase):
        g = gabor(32, one(0), one(0), one(orientation), one(4.0), one(phase), one(0.15))
        return (0.5 + 0.3 * g / g.abs().max()).unsqueeze(1).expand(-1, 3, -1, -1)

    best = cell(stimulus(30.0, 0.0)).item()
    assert best > cell(stimulus(120.0, 0.0)).item() + 5
    assert best > cell(stimulus(30.0, 180.0)).item() + 5


def test_complex_cell_is_phase_invariant_and_optimum_is_exact():
    cell = ComplexCell(input_size=48, orientation_deg=45.0, frequency=4.0, sigma=0.15)
    w = cell.weight.flatten(2).double()[0]
    gram = w @ w.T
    expected = 625.0 * torch.linalg.eigvalsh(gram)[-1].item()
    optimum = cell(cell.optimal_images()).item()
    assert optimum == pytest.approx(expected, rel=1e-4)
    phases = torch.arange(0.0, 360.0, 30.0)
    n = phases.numel()
    g = gabor(48, torch.zeros(n), torch.zeros(n), torch.full((n,), 45.0), torch.full((n,), 4.0),
              phases, torch.full((n,), 0.15))
    responses = cell((0.5 + 0.3 * g / g.abs().amax((1, 2), keepdim=True)).unsqueeze(1))[:, 0]
    assert responses.min().item() > 0.97 * optimum
    assert responses.max().item() <= optimum * (1 + 1e-4)
    random = torch.rand(32, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    assert torch.all(cell(random) <= optimum)


def test_cells_broadcast_parameter_lists_to_units():
    cell = SimpleCell(input_size=16, orientation_deg=[0.0, 45.0, 90.0], frequency=2.0)
    assert cell.num_outputs == 3
    out = cell(cell.optimal_images())
    assert out.shape == (3, 3)
    assert torch.all(out.diagonal() >= out.max(dim=0).values - 1e-4)  # each unit likes its own
    with pytest.raises(ValueError, match="entries"):
        SimpleCell(orientation_deg=[0.0, 1.0], frequency=[1.0, 2.0, 3.0])


def test_cell_rejects_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        SimpleCell()(torch.zeros(3, 64, 64))


def test_complex_quadrature_phase_reads_stimulus_phase():
    cell = ComplexCell(input_size=48, orientation_deg=45.0, frequency=4.0)
    for phase in (0.0, 60.0, -120.0):
        g = gabor(48, one(0), one(0), one(45.0), one(4.0), one(phase), one(0.15))
        q = cell.quadrature_drive(cell.preprocess((0.5 + 0.3 * g).unsqueeze(1)))[0, 0]
        measured = math.degrees(math.atan2(q[1].item(), q[0].item()))
        assert abs((measured - phase + 180) % 360 - 180) < 5
