"""The four geometric regularizers of the 3D-MEI paper (Appendix B, eqs. 1-4).

All functions are vectorized over the edge / face lists and accept any leading batch dimensions
on ``vertices`` (``(..., V, 3)``); they return one value per batch element (shape ``(...)``).
Units: squared world units (Laplacian, edge, ARAP) or squared world area (area).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lit3d.geometry.topology import uniform_laplacian


def laplacian_loss(vertices: Tensor, edges: Tensor) -> Tensor:
    """Eq. 1: ``1/|V| sum_i || v_i - 1/|N(i)| sum_{j in N(i)} v_j ||^2``.

    Args:
        vertices: (..., V, 3).
        edges: (E, 2) undirected edges defining the 1-ring ``N(i)``.
    """
    return uniform_laplacian(vertices, edges).pow(2).sum(-1).mean(-1)


def edge_lengths(vertices: Tensor, edges: Tensor) -> Tensor:
    """Euclidean length of every edge, (..., E)."""
    diff = vertices.index_select(-2, edges[:, 0]) - vertices.index_select(-2, edges[:, 1])
    return torch.linalg.vector_norm(diff, dim=-1)


def edge_length_loss(vertices: Tensor, edges: Tensor) -> Tensor:
    """Eq. 2: variance of the edge lengths, ``1/|E| sum_e (l_e - mean l)^2``."""
    return edge_lengths(vertices, edges).var(dim=-1, unbiased=False)


def face_areas(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area ``1/2 ||(v_j - v_i) x (v_k - v_i)||`` of every triangle, (..., F)."""
    v0 = vertices.index_select(-2, faces[:, 0])
    v1 = vertices.index_select(-2, faces[:, 1])
    v2 = vertices.index_select(-2, faces[:, 2])
    return 0.5 * torch.linalg.vector_norm(torch.linalg.cross(v1 - v0, v2 - v0, dim=-1), dim=-1)


def face_area_loss(vertices: Tensor, faces: Tensor) -> Tensor:
    """Eq. 3: variance of the triangle areas, ``1/|F| sum_t (A_t - mean A)^2``."""
    return face_areas(vertices, faces).var(dim=-1, unbiased=False)


def arap_direction_loss(vertices: Tensor, rest_vertices: Tensor, edges: Tensor) -> Tensor:
    """Eq. 4: direction-preserving ARAP.

    Each deformed edge ``e = v_i - v_j`` is projected on the unit direction ``ê`` of the same edge
    in the rest mesh; the loss is the mean squared norm of the orthogonal residual
    ``e - (e·ê) ê``. Changes of edge length are not penalized.

    Args:
        vertices: (..., V, 3) deformed positions.
        rest_vertices: (V, 3) or (..., V, 3) initial positions (no gradient needed).
        edges: (E, 2).
    """
    i, j = edges[:, 0], edges[:, 1]
    e = vertices.index_select(-2, i) - vertices.index_select(-2, j)
    e0 = rest_vertices.index_select(-2, i) - rest_vertices.index_select(-2, j)
    e0 = e0 / torch.linalg.vector_norm(e0, dim=-1, keepdim=True)
    residual = e - (e * e0).sum(-1, keepdim=True) * e0
    return residual.pow(2).sum(-1).mean(-1)
