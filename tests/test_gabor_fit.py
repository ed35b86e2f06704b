"""The best-fitting-Gabor metric recovers known parameters."""

import pytest
import torch

from lit3d.metrics.gabor import fit_gabor, phase_difference_deg
from lit3d.models.cells import gabor


@pytest.mark.parametrize("orientation,frequency,phase", [(30.0, 3.0, 0.0), (120.0, 4.5, 75.0),
                                                         (0.0, 2.0, -150.0)])
def test_fit_recovers_orientation_frequency_phase(orientation, frequency, phase):
    one = lambda v: torch.tensor([float(v)])  # noqa: E731
    g = gabor(64, one(0), one(0), one(orientation), one(frequency), one(phase), one(0.15))[0]
    noise = 0.02 * torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    image = (0.5 + 0.3 * g / g.abs().max() + noise).expand(3, -1, -1)
    fit = fit_gabor(image)
    assert fit.orientation_deg == orientation
    assert fit.frequency == frequency
    assert phase_difference_deg(fit.phase_deg, phase) < 3.0
    assert fit.r2 > 0.8


def test_phase_difference_wraps():
    assert phase_difference_deg(170.0, -170.0) == pytest.approx(20.0)
    assert phase_difference_deg(0.0, 180.0) == pytest.approx(180.0)
    assert phase_difference_deg(-30.0, 330.0) == pytest.approx(0.0)
