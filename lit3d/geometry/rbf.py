"""Gaussian radial-basis-function deformation (3D-MEI paper, Methods).

``Δv = sum_k δ_k · exp(-||v - c_k||² / (2 σ_k²))`` with a learnable offset ``δ_k`` (world units)
and a learnable scale ``σ_k > 0`` (world units) per kernel; the control points ``c_k`` are the
vertices of the initial mesh.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def squared_distances(points: Tensor, centers: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances, (..., V, K), clamped at 0.

    Args:
        points: (..., V, 3).
        centers: (..., K, 3).
    """
    d2 = (
        points.pow(2).sum(-1, keepdim=True)
        - 2.0 * points @ centers.transpose(-1, -2)
        + centers.pow(2).sum(-1).unsqueeze(-2)
    )
    return d2.clamp(min=0.0)


def rbf_displacement(points: Tensor, centers: Tensor, offsets: Tensor, sigmas: Tensor) -> Tensor:
    """Dense Gaussian RBF displacement field evaluated at ``points``.

    Args:
        points: (V, 3) where the field is evaluated (the rest vertices).
        centers: (K, 3) control points ``c_k``.
        offsets: (..., K, 3) offsets ``δ_k``; leading dimensions batch independent deformations.
        sigmas: (..., K) positive scales ``σ_k`` (same leading dimensions as ``offsets``).

    Returns:
        (..., V, 3) displacements ``Δv``. Memory: one (..., V, K) kernel matrix.
    """
    d2 = squared_distances(points, centers)  # (V, K)
    kernel = torch.exp(-d2 / (2.0 * sigmas.pow(2)).unsqueeze(-2))  # (..., V, K)
    return kernel @ offsets


class RBFDeformation(nn.Module):
    """Learnable RBF deformation with one kernel at every rest vertex.

    Parameters: ``offsets`` (..., V, 3) and ``log_sigma`` (..., V) so ``σ = exp(log_sigma)`` stays
    positive. Leading ``batch_shape`` dimensions hold independent deformations of the same mesh.

    Args:
        rest_vertices: (V, 3) initial mesh; also the control points.
        sigma: initial σ in world units (same for every kernel).
        offset_std: std (world units) of the random initial offsets; 0 starts at the rest mesh.
        batch_shape: leading dimensions of independent deformations, e.g. ``(N,)`` for N neurons.
        generator: torch generator for the initial offsets (reproducible seeds).
    """

    def __init__(
        self,
        rest_vertices: Tensor,
        sigma: float,
        offset_std: float = 0.0,
        batch_shape: tuple[int, ...] = (),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"RBF sigma must be > 0, got {sigma}")
        rest = rest_vertices.detach().float()
        self.register_buffer("rest_vertices", rest)
        shape = (*batch_shape, rest.shape[0])
        offsets = torch.randn((*shape, 3), generator=generator) * offset_std
        self.offsets = nn.Parameter(offsets)
        self.log_sigma = nn.Parameter(torch.full(shape, math.log(sigma)))

    @property
    def sigma(self) -> Tensor:
        """(..., V) kernel scales in world units."""
        return self.log_sigma.exp()

    def displacement(self) -> Tensor:
        """(..., V, 3) displacement of every rest vertex."""
        return rbf_displacement(self.rest_vertices, self.rest_vertices, self.offsets, self.sigma)

    def forward(self) -> Tensor:
        """(..., V, 3) deformed vertices."""
        return self.rest_vertices + self.displacement()


class VertexOffsets(nn.Module):
    """Free per-vertex offsets (no RBF coupling): ``v = v0 + δ``.

    Args: as :class:`RBFDeformation` (``sigma`` is not used).
    """

    def __init__(
        self,
        rest_vertices: Tensor,
        offset_std: float = 0.0,
        batch_shape: tuple[int, ...] = (),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        rest = rest_vertices.detach().float()
        self.register_buffer("rest_vertices", rest)
        offsets = torch.randn((*batch_shape, *rest.shape), generator=generator) * offset_std
        self.offsets = nn.Parameter(offsets)

    def displacement(self) -> Tensor:
        return self.offsets

    def forward(self) -> Tensor:
        return self.rest_vertices + self.offsets
