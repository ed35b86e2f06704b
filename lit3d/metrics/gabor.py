"""Best-fitting Gabor of an image: orientation, frequency and phase by linear least squares.

For each (orientation, frequency) on a grid, the image is regressed on a constant and the even and
odd Gabors of :func:`lit3d.models.cells.gabor` (phase 0° and 90°) at a given centre and envelope;
the pair of coefficients ``(p, q)`` gives the amplitude ``hypot(p, q)`` and the phase
``atan2(q, p)`` in the convention of the cells (``cos(2π f u + φ)``). The grid point with the
highest R² wins. Used to read the phase of complex-cell 3D-MEIs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from lit3d.models.cells import gabor
from lit3d.models.preprocessing import to_grayscale


@dataclass(frozen=True)
class GaborFit:
    """Parameters of the best-fitting Gabor (angles in degrees, frequency in cycles/width)."""

    orientation_deg: float
    frequency: float
    phase_deg: float
    amplitude: float
    r2: float


def fit_gabor(
    image: Tensor,
    x: float = 0.0,
    y: float = 0.0,
    sigma: float = 0.15,
    orientations_deg: Sequence[float] = tuple(range(0, 180, 5)),
    frequencies: Sequence[float] = tuple(f / 2 for f in range(2, 17)),
) -> GaborFit:
    """Fits a Gabor to ``image``, (C, H, W) or (H, W), square; centre and envelope are fixed.

    Returns the :class:`GaborFit` with the highest coefficient of determination R².
    """
    if image.ndim == 3:
        image = to_grayscale(image.unsqueeze(0))[0, 0]
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square (H, W) or (C, H, W) image, got {tuple(image.shape)}")
    size = image.shape[-1]
    target = image.detach().double().flatten()
    total = (target - target.mean()).pow(2).sum().clamp(min=1e-30)
    grid = [(t, f) for t in orientations_deg for f in frequencies]
    theta = torch.tensor([g[0] for g in grid], dtype=torch.float64)
    freq = torch.tensor([g[1] for g in grid], dtype=torch.float64)
    n = len(grid)
    args = (torch.full((n,), x), torch.full((n,), y), theta, freq)
    even = gabor(size, *args, torch.zeros(n), torch.full((n,), sigma)).double().flatten(1)
    odd = gabor(size, *args, torch.full((n,), 90.0), torch.full((n,), sigma)).double().flatten(1)
    design = torch.stack([torch.ones_like(even), even, odd], dim=-1)  # (n, P, 3)
    coef = torch.linalg.lstsq(design, target.expand(n, -1).unsqueeze(-1)).solution[..., 0]
    residual = (design @ coef.unsqueeze(-1))[..., 0] - target
    r2 = 1 - residual.pow(2).sum(-1) / total
    best = int(torch.argmax(r2))
    p, q = float(coef[best, 1]), float(coef[best, 2])
    return GaborFit(
        orientation_deg=float(theta[best]),
        frequency=float(freq[best]),
        phase_deg=math.degrees(math.atan2(q, p)),
        amplitude=math.hypot(p, q),
        r2=float(r2[best]),
    )


def phase_difference_deg(a: float, b: float) -> float:
    """Circular distance between two phases, in [0, 180] degrees."""
    d = abs((a - b) % 360.0)
    return min(d, 360.0 - d)
