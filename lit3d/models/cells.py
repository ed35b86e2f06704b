"""Simulated V1 cells whose optimal stimulus is known: Gabor simple and complex (energy) cells.

Image coordinates are in *image widths*: ``x`` from -0.5 (left) to 0.5 (right), ``y`` from -0.5
(bottom) to 0.5 (top), so for the overhead camera world ``+x``/``+y`` are image ``+x``/``+y``.
A Gabor's ``orientation_deg`` is the angle of its bars, counter-clockwise from the image x axis;
its carrier ``cos(2π f u + φ)`` varies along ``u = -x sinθ + y cosθ`` with ``f`` in cycles per image
width; its envelope is an isotropic Gaussian of std ``sigma`` (image widths).

Every filter is made zero-mean and unit-norm, so with the default normalization (each image's own
mean removed, then L2 norm 25) a simple cell's drive is ``25 cos∠(image, filter)`` and the optimum
is attained by the filter itself. All parameters accept a scalar or a list (one entry per unit).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lit3d.models.base import ResponseModel
from lit3d.models.preprocessing import ImageNormalizer, resize, to_grayscale

FloatOrList = float | Sequence[float]


def pixel_grid(size: int) -> tuple[Tensor, Tensor]:
    """(size, size) coordinates of pixel centres in image widths: ``x`` right, ``y`` up."""
    centers = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5
    y, x = torch.meshgrid(-centers, centers, indexing="ij")
    return x, y


def gabor(
    size: int,
    x: Tensor,
    y: Tensor,
    orientation_deg: Tensor,
    frequency: Tensor,
    phase_deg: Tensor,
    sigma: Tensor,
) -> Tensor:
    """Zero-mean, unit-norm Gabor filters, (N, size, size) float32; parameters are (N,) tensors."""
    gx, gy = pixel_grid(size)
    p = [torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1, 1)
         for t in (x, y, orientation_deg, frequency, phase_deg, sigma)]
    x0, y0, theta, freq, phase, sig = p
    dx, dy = gx - x0, gy - y0
    theta = torch.deg2rad(theta)
    u = -dx * torch.sin(theta) + dy * torch.cos(theta)
    envelope = torch.exp(-(dx**2 + dy**2) / (2 * sig**2))
    filters = envelope * torch.cos(2 * math.pi * freq * u + torch.deg2rad(phase))
    filters = filters - filters.mean(dim=(-2, -1), keepdim=True)
    filters = filters / torch.linalg.vector_norm(filters.flatten(1), dim=1).view(-1, 1, 1)
    return filters.float()


def _broadcast(**params: FloatOrList) -> dict[str, Tensor]:
    tensors = {k: torch.as_tensor(v, dtype=torch.float64).flatten() for k, v in params.items()}
    n = max(t.numel() for t in tensors.values())
    for k, t in tensors.items():
        if t.numel() not in (1, n):
            raise ValueError(f"cell parameter {k!r} has {t.numel()} entries; expected 1 or {n}")
    return {k: t.expand(n).clone() for k, t in tensors.items()}


class GaborCell(ResponseModel):
    """Shared parameters and preprocessing of the simulated cells.

    Args:
        input_size: side of the cell's square input in pixels (renders are resized to it).
        x, y: receptive-field centre, image widths from the image centre.
        orientation_deg: bar orientation, degrees counter-clockwise from the image x axis.
        frequency: spatial frequency, cycles per image width.
        phase_deg: carrier phase, degrees.
        sigma: Gaussian envelope std, image widths.
        gain: response gain.
        mean, std, norm: input normalization (:class:`ImageNormalizer`); ``None`` mean/std use
            each image's own statistics.
    """

    def __init__(
        self,
        input_size: int = 64,
        x: FloatOrList = 0.0,
        y: FloatOrList = 0.0,
        orientation_deg: FloatOrList = 45.0,
        frequency: FloatOrList = 3.0,
        phase_deg: FloatOrList = 0.0,
        sigma: FloatOrList = 0.15,
        gain: float = 1.0,
        mean: float | None = None,
        std: float | None = None,
        norm: float | None = 25.0,
    ):
        super().__init__()
        if input_size < 4:
            raise ValueError(f"input_size must be >= 4 pixels, got {input_size}")
        params = _broadcast(x=x, y=y, orientation_deg=orientation_deg, frequency=frequency,
                            phase_deg=phase_deg, sigma=sigma)
        if (params["sigma"] <= 0).any() or (params["frequency"] < 0).any():
            raise ValueError("Gabor sigma must be > 0 and frequency >= 0")
        self.params = params
        self.input_size = int(input_size)
        self.gain = float(gain)
        self.num_outputs = int(params["x"].numel())
        self.normalizer = ImageNormalizer(mean=mean, std=std, norm=norm)

    def filters(self, phase_shift_deg: float = 0.0) -> Tensor:
        p = self.params
        return gabor(self.input_size, p["x"], p["y"], p["orientation_deg"], p["frequency"],
                     p["phase_deg"] + phase_shift_deg, p["sigma"])

    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 1, S, S): luminance, resized to ``input_size``, normalized."""
        return self.normalizer(resize(to_grayscale(images), self.input_size))

    def _drive(self, inputs: Tensor, filters: Tensor) -> Tensor:
        """(B, 1, S, S) x (N, S, S) -> (B, N) dot products."""
        return inputs.flatten(1) @ filters.flatten(1).T

    def _images_from_patterns(self, patterns: Tensor) -> Tensor:
        """Pixel-space RGB images (N, 3, S, S) that normalize to ``norm * patterns / |patterns|``
        (patterns are zero-mean)."""
        n = self.normalizer
        mean = 0.5 if n.mean is None else float(torch.as_tensor(n.mean).flatten()[0])
        std = 1.0 if n.std is None else float(torch.as_tensor(n.std).flatten()[0])
        scale = 0.4 * std / patterns.abs().amax(dim=(-2, -1), keepdim=True)
        images = mean + scale * patterns
        return images.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


class SimpleCell(GaborCell):
    """Linear Gabor filter followed by rectification: ``r = gain · g(<x̃, w>)``.

    Args:
        rectification: ``"softplus"`` (default: smooth, so a run started at a negative drive
            still has a gradient), ``"relu"``, or ``"square"`` (half-squared).
        Others: see :class:`GaborCell`.
    """

    def __init__(self, *args, rectification: Literal["softplus", "relu", "square"] = "softplus",
                 **kwargs):
        super().__init__(*args, **kwargs)
        if rectification not in ("softplus", "relu", "square"):
            raise ValueError(f"unknown rectification {rectification!r}")
        self.rectification = rectification
        self.register_buffer("weight", self.filters(), persistent=False)

    def _rectify(self, drive: Tensor) -> Tensor:
        if self.rectification == "softplus":
            return F.softplus(drive)
        if self.rectification == "relu":
            return F.relu(drive)
        return F.relu(drive).pow(2)

    def respond(self, inputs: Tensor) -> Tensor:
        return self.gain * self._rectify(self._drive(inputs, self.weight))

    def optimal_images(self) -> Tensor:
        return self._images_from_patterns(self.weight)


class ComplexCell(GaborCell):
    """Energy model: ``r = gain · (<x̃, w_φ>² + <x̃, w_φ+90°>²)`` with a quadrature Gabor pair.

    The response is (nearly) invariant to the stimulus phase; its exact optimum at the input norm
    is ``gain · norm² · λ_max`` of the pair's 2x2 Gram matrix, attained by its top eigenvector.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("weight", torch.stack([self.filters(), self.filters(90.0)], 1),
                             persistent=False)  # (N, 2, S, S)

    def respond(self, inputs: Tensor) -> Tensor:
        drive = self._drive(inputs, self.weight.flatten(0, 1)).unflatten(1, (-1, 2))
        return self.gain * drive.pow(2).sum(-1)

    def quadrature_drive(self, inputs: Tensor) -> Tensor:
        """(B, N, 2) projections on the even/odd filters (their angle is the stimulus phase)."""
        return self._drive(inputs, self.weight.flatten(0, 1)).unflatten(1, (-1, 2))

    def optimal_images(self) -> Tensor:
        w = self.weight.flatten(2).double()  # (N, 2, P)
        gram = w @ w.transpose(1, 2)
        _, vectors = torch.linalg.eigh(gram)
        top = vectors[..., -1]  # (N, 2), eigenvalues ascending
        pattern = (top.unsqueeze(-1) * w).sum(1).reshape(-1, self.input_size, self.input_size)
        return self._images_from_patterns(pattern.float())
