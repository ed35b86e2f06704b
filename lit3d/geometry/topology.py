"""Connectivity derived from a face list: edges and the uniform (umbrella) Laplacian."""

from __future__ import annotations

import torch
from torch import Tensor


def edges_from_faces(faces: Tensor) -> Tensor:
    """Unique undirected edges of a triangle mesh.

    Args:
        faces: (F, 3) long vertex indices.

    Returns:
        (E, 2) long tensor, each row ``(i, j)`` with ``i < j``, rows sorted lexicographically.
    """
    pairs = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)
    pairs = torch.sort(pairs, dim=1).values
    return torch.unique(pairs, dim=0)


def vertex_degrees(edges: Tensor, num_vertices: int) -> Tensor:
    """Number of 1-ring neighbours of each vertex, (V,) long."""
    return torch.bincount(edges.flatten(), minlength=num_vertices)


def neighbor_mean(vertices: Tensor, edges: Tensor) -> Tensor:
    """Mean position of each vertex's 1-ring neighbours.

    Args:
        vertices: (..., V, 3) positions (any leading batch dimensions).
        edges: (E, 2) undirected edges.

    Returns:
        (..., V, 3); an isolated vertex (no edge) is its own neighbour mean.
    """
    num_vertices = vertices.shape[-2]
    i, j = edges[:, 0], edges[:, 1]
    sums = torch.zeros_like(vertices)
    sums = sums.index_add(-2, i, vertices.index_select(-2, j))
    sums = sums.index_add(-2, j, vertices.index_select(-2, i))
    degree = vertex_degrees(edges, num_vertices).to(vertices.dtype).unsqueeze(-1)
    return torch.where(degree > 0, sums / degree.clamp(min=1), vertices)


def uniform_laplacian(vertices: Tensor, edges: Tensor) -> Tensor:
    """Umbrella Laplacian ``v_i - mean_{j in N(i)} v_j``, (..., V, 3)."""
    return vertices - neighbor_mean(vertices, edges)


def boundary_vertices(faces: Tensor, num_vertices: int) -> Tensor:
    """(V,) bool: vertices on the boundary (an edge used by exactly one face); all ``False``
    for a closed mesh."""
    pairs = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)
    pairs = torch.sort(pairs, dim=1).values
    edges, counts = torch.unique(pairs, dim=0, return_counts=True)
    boundary = torch.zeros(num_vertices, dtype=torch.bool, device=faces.device)
    boundary[edges[counts == 1].flatten()] = True
    return boundary


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """(V, 3) unit vertex normals: the area-weighted sum of the adjacent faces' normals
    (faces counter-clockwise seen from outside); a vertex without faces gets 0."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # length = 2 x area
    sums = torch.zeros_like(vertices)
    for k in range(3):
        sums = sums.index_add(0, faces[:, k], face_normals)
    return torch.nn.functional.normalize(sums, dim=-1)
