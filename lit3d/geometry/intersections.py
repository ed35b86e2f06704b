"""Self-intersections of a triangle mesh: which faces pass through which.

Every pair of faces whose bounding boxes overlap (found with a uniform grid, vectorized) is
tested exactly, not sampled: two triangles in general position intersect iff an edge of one
crosses the other, so each pair is decided by edge-through-triangle tests built from the signs
of orientation determinants (evaluated in float64). Pairs that share a vertex intersect iff the
edge opposite the shared vertex of one crosses the other; pairs sharing an edge only touch.
Touching (a determinant exactly 0, e.g. an edge grazing another edge) is not counted as an
intersection, so degenerate contacts of exactly symmetric meshes are not reported.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Face pairs tested per vectorized block (bounds the narrow phase's memory to ~100 MB).
PAIR_BLOCK = 200_000


def _cells(lo: Tensor, hi: Tensor, size: float) -> tuple[Tensor, Tensor]:
    """Grid cells overlapped by each box: ``(owner (N,), key (N,))``, one row per (box, cell)."""
    clo = torch.floor(lo / size).long()
    chi = torch.floor(hi / size).long()
    dims = chi - clo + 1  # (F, 3)
    counts = dims.prod(-1)
    owner = torch.repeat_interleave(torch.arange(lo.shape[0]), counts)
    local = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts)
    d = dims[owner]
    offset = torch.stack([local // (d[:, 1] * d[:, 2]), (local // d[:, 2]) % d[:, 1],
                          local % d[:, 2]], -1)
    cell = clo[owner] + offset
    cell = cell - cell.min(0).values
    extent = cell.max(0).values + 1
    key = (cell[:, 0] * extent[1] + cell[:, 1]) * extent[2] + cell[:, 2]
    return owner, key


def candidate_pairs(vertices: Tensor, faces: Tensor) -> Tensor:
    """Face pairs ``(i, j)``, ``i < j``, whose axis-aligned bounding boxes overlap, (P, 2) long.

    Broad phase: each face is entered in the cells of a uniform grid (cell size: the median
    face box size) that its box overlaps; faces sharing a cell are paired, then kept if their
    boxes overlap.

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) vertex indices.
    """
    corners = vertices.detach().double().cpu()[faces.cpu()]  # (F, 3, 3)
    lo, hi = corners.min(1).values, corners.max(1).values
    size = float((hi - lo).max(-1).values.median())
    if not size > 0:
        size = float((hi - lo).max()) or 1.0
    owner, key = _cells(lo, hi, size)
    key, order = torch.sort(key, stable=True)
    owner = owner[order]
    # Pairs within each run of equal keys: entry p pairs with p+1 .. end-1 of its run.
    starts = torch.ones_like(key, dtype=torch.bool)
    starts[1:] = key[1:] != key[:-1]
    run = torch.cumsum(starts.long(), 0) - 1
    run_end = torch.cumsum(torch.bincount(run), 0)[run]
    count = run_end - 1 - torch.arange(key.shape[0])
    a = torch.repeat_interleave(torch.arange(key.shape[0]), count)
    b = a + 1 + torch.arange(a.shape[0]) - torch.repeat_interleave(torch.cumsum(count, 0) - count,
                                                                  count)
    i, j = owner[a], owner[b]
    keep = i != j
    i, j = torch.minimum(i, j)[keep], torch.maximum(i, j)[keep]
    code = torch.unique(i * faces.shape[0] + j)  # sorted, duplicates (shared cells) dropped
    pairs = torch.stack([code // faces.shape[0], code % faces.shape[0]], -1)
    overlap = ((lo[pairs[:, 0]] <= hi[pairs[:, 1]]) & (lo[pairs[:, 1]] <= hi[pairs[:, 0]])).all(-1)
    return pairs[overlap]


def _triple(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    """``det[x, y, z] = (x × y) · z`` over the last dimension."""
    return (torch.linalg.cross(x, y, dim=-1) * z).sum(-1)


def segments_cross_triangles(p: Tensor, q: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Whether segment ``pq`` passes through the interior of triangle ``abc``, (...,) bool.

    ``p`` and ``q`` lie strictly on opposite sides of the triangle's plane and the line ``pq``
    strictly inside the triangle's three edges (Plücker signs). All arguments (..., 3).
    """
    normal = torch.linalg.cross(b - a, c - a, dim=-1)
    sp, sq = ((p - a) * normal).sum(-1), ((q - a) * normal).sum(-1)
    d = q - p
    s0 = _triple(a - p, b - p, d)
    s1 = _triple(b - p, c - p, d)
    s2 = _triple(c - p, a - p, d)
    same = ((s0 > 0) & (s1 > 0) & (s2 > 0)) | ((s0 < 0) & (s1 < 0) & (s2 < 0))
    return (sp * sq < 0) & same


def _separated(tri: Tensor, other: Tensor, shared: Tensor) -> Tensor:
    """(P,) bool: the vertices of ``other`` not shared with ``tri`` lie strictly on one side of
    ``tri``'s plane (then the two cannot cross)."""
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    side = ((other - tri[:, :1]) * normal.unsqueeze(1)).sum(-1)  # (P, 3)
    return ((side > 0) | shared).all(1) | ((side < 0) | shared).all(1)


def _pairs_intersect(corners: Tensor, faces: Tensor, pairs: Tensor) -> Tensor:
    """(P,) bool: do the faces of each pair intersect (see the module docstring)."""
    fi, fj = faces[pairs[:, 0]], faces[pairs[:, 1]]  # (P, 3)
    shared_i = (fi.unsqueeze(2) == fj.unsqueeze(1)).any(2)  # (P, 3): vertex k of i is in j
    shared_j = (fj.unsqueeze(2) == fi.unsqueeze(1)).any(2)
    hit = torch.zeros(pairs.shape[0], dtype=torch.bool)
    # Pairs sharing an edge only touch; pairs with one triangle on one side of the other's
    # plane cannot cross (the cheap early-out that removes most candidates).
    ti, tj = corners[pairs[:, 0]], corners[pairs[:, 1]]  # (P, 3, 3)
    open_ = (shared_i.sum(1) < 2) & ~_separated(ti, tj, shared_j) & ~_separated(tj, ti, shared_i)
    index = open_.nonzero().squeeze(1)
    ti, tj, shared_i, shared_j = ti[index], tj[index], shared_i[index], shared_j[index]
    # Edge k of a triangle runs from vertex k to vertex k+1; it is tested unless one of its
    # ends is a shared vertex.
    start, end = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    crossing = torch.zeros(index.shape[0], dtype=torch.bool)
    for edges_of, shared_e, other in ((ti, shared_i, tj), (tj, shared_j, ti)):
        usable = ~(shared_e[:, start] | shared_e[:, end])  # (P', 3)
        crosses = segments_cross_triangles(
            edges_of[:, start], edges_of[:, end],
            other[:, 0:1], other[:, 1:2], other[:, 2:3])  # (P', 3)
        crossing |= (crosses & usable).any(1)
    hit[index] = crossing
    return hit


def self_intersecting_pairs(vertices: Tensor, faces: Tensor) -> Tensor:
    """Pairs of faces ``(i, j)``, ``i < j``, that pass through each other, (P, 2) long (CPU).

    Args:
        vertices: (V, 3) positions (any float dtype/device; tested in float64 on the CPU).
        faces: (F, 3) vertex indices.
    """
    faces = faces.cpu().long()
    corners = vertices.detach().double().cpu()[faces]
    pairs = candidate_pairs(vertices, faces)
    hits = [pairs[k:k + PAIR_BLOCK][_pairs_intersect(corners, faces, pairs[k:k + PAIR_BLOCK])]
            for k in range(0, pairs.shape[0], PAIR_BLOCK)]
    return torch.cat(hits) if hits else pairs


def self_intersecting_faces(vertices: Tensor, faces: Tensor) -> Tensor:
    """(F,) bool: faces involved in at least one self-intersection."""
    involved = torch.zeros(faces.shape[0], dtype=torch.bool)
    involved[self_intersecting_pairs(vertices, faces).flatten()] = True
    return involved


def self_intersection_fraction(vertices: Tensor, faces: Tensor) -> float:
    """Fraction of faces involved in a self-intersection (0 for an embedded surface)."""
    return float(self_intersecting_faces(vertices, faces).float().mean())
