"""Display transforms applied to linear renders before a network sees them.

A physically based render is linear radiance, unbounded above; networks were trained on
display-encoded (sRGB) photographs in [0, 1]. MRD therefore maps renders through Reinhard tone
mapping and the sRGB transfer curve first. Tensors are (..., C, H, W) or any shape: elementwise.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reinhard(radiance: Tensor) -> Tensor:
    """Reinhard's global operator ``L / (1 + L)``: [0, inf) -> [0, 1), elementwise."""
    return radiance / (1 + radiance.clamp(min=0))


def srgb_encode(linear: Tensor) -> Tensor:
    """IEC 61966-2-1 sRGB transfer curve on [0, 1] (clamped): 12.92·x below 0.0031308,
    else 1.055·x^(1/2.4) − 0.055. Differentiable (the power is taken of a clamped value)."""
    x = linear.clamp(0, 1)
    curve = 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, 12.92 * x, curve)


def srgb_decode(encoded: Tensor) -> Tensor:
    """Inverse of :func:`srgb_encode` on [0, 1]."""
    y = encoded.clamp(0, 1)
    return torch.where(y <= 0.04045, y / 12.92, ((y.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def display(radiance: Tensor) -> Tensor:
    """Linear render -> what a network sees: sRGB(Reinhard(radiance))."""
    return srgb_encode(reinhard(radiance))
