"""Repulsion between parts of a surface that approach each other.

Two vertices closer than ``distance`` now repel each other with the barrier
``b(d) = -(d - d̂)² log(d / d̂)`` of Incremental Potential Contact (Li et al. 2020), zero with zero
slope at ``d = d̂`` and infinite at contact. A pair's range ``d̂`` is ``distance``, or half the
pair's distance on the initial mesh if that is smaller: neighbours along the surface interact
only when squeezed to half their initial distance, so bending is free, while a fold closing, a
pleat (the two sides of a thin fin pressed together) or a bulge touching its neighbour is pushed
open. Pairs are found with a k-d tree (not differentiated); the energy is differentiable in the
vertices.
"""

from __future__ import annotations

import torch
from torch import Tensor


def close_pairs(vertices: Tensor, distance: float) -> Tensor:
    """Vertex pairs ``(i, j)``, ``i < j``, nearer than ``distance`` (world units), (P, 2) long
    on ``vertices``' device (a k-d tree; not differentiated)."""
    from scipy.spatial import cKDTree

    points = vertices.detach().double().cpu().numpy()
    pairs = torch.as_tensor(cKDTree(points).query_pairs(distance, output_type="ndarray"),
                            dtype=torch.long).reshape(-1, 2)
    return pairs.to(vertices.device)


def barrier(d: Tensor, reach: Tensor | float) -> Tensor:
    """IPC barrier ``-(d - d̂)² log(d / d̂)`` for ``0 < d < d̂ = reach``, 0 beyond; (...,)."""
    d = d.clamp(min=1e-12)
    reach = torch.as_tensor(reach, dtype=d.dtype, device=d.device)
    inside = d < reach
    safe = torch.where(inside, reach, d)  # no log of ratios > 1 in the unused branch
    value = -(d - safe).pow(2) * torch.log(d / safe)
    return torch.where(inside, value, torch.zeros_like(d))


def repulsion_energy(vertices: Tensor, rest_vertices: Tensor, distance: float) -> Tensor:
    """Sum of :func:`barrier` over the vertex pairs nearer than their range (module
    docstring), divided by ``distance²`` and the vertex count (dimensionless, comparable across
    mesh sizes); a scalar, 0 when nothing is close."""
    pairs = close_pairs(vertices, distance)
    if pairs.numel() == 0:
        return vertices.sum() * 0.0
    i, j = pairs[:, 0], pairs[:, 1]
    rest = (rest_vertices[i] - rest_vertices[j]).norm(dim=-1)
    reach = torch.clamp(rest / 2, max=distance)
    d = (vertices[i] - vertices[j]).norm(dim=-1)
    return barrier(d, reach).sum() / (distance ** 2 * vertices.shape[0])
