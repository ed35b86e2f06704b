"""Self-intersections of a triangle mesh: which faces pass through which.

Every pair of faces whose bounding boxes overlap (found with a uniform grid, vectorized) is
tested exactly, not sampled: two triangles in general position intersect iff an edge of one
crosses the other, so each pair is decided by edge-through-triangle tests built from the signs
of orientation determinants (evaluated in float64). Pairs that share a vertex intersect iff the
edge opposite the shared vertex of one crosses the other; pairs sharing an edge only touch.
Touching (a determinant exactly 0, e.g. an edge grazing another edge) is not counted as an
intersection, so degenerate contacts of exactly symmetric meshes are not reported.

:class:`SelfIntersections` answers the same question for a sequence of nearby states of one
mesh (an optimizer's steps): it keeps the broad phase's pairs, found with boxes grown by a margin,
until some vertex has moved half that margin, the pairs' topology (shared vertices) and each
pair's answer, so most calls run the narrow phase alone, on the pairs with a vertex that changed
since the call before (``bench/guard.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Face pairs tested per vectorized block (bounds the narrow phase's memory to ~100 MB).
PAIR_BLOCK = 200_000


def _cells(lo: Tensor, hi: Tensor, size: float) -> tuple[Tensor, Tensor, Tensor]:
    """Grid cells overlapped by each box: ``(owner (N,), cell (N, 3), key (N,))``, one row per
    (box, cell); ``cell``: integer coordinates ``floor(x / size)``, ``key``: one number each."""
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
    shifted = cell - cell.min(0).values
    extent = shifted.max(0).values + 1
    key = (shifted[:, 0] * extent[1] + shifted[:, 1]) * extent[2] + shifted[:, 2]
    return owner, cell, key


def candidate_pairs(vertices: Tensor, faces: Tensor, margin: float = 0.0) -> Tensor:
    """Face pairs ``(i, j)``, ``i < j``, whose axis-aligned bounding boxes overlap (or come
    within ``margin`` of each other on every axis), (P, 2) long.

    Broad phase: each face is entered in the cells of a uniform grid (cell size: the median
    face box size) that its box overlaps; faces sharing a cell are paired, and a pair is kept
    if their boxes overlap, in the one cell that holds the low corner of the overlap (so no
    pair is found twice).

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) vertex indices.
        margin: gap (world units) up to which boxes count as overlapping.
    """
    corners = vertices.detach().double().cpu()[faces.cpu()]  # (F, 3, 3)
    lo, hi = corners.min(1).values - margin / 2, corners.max(1).values + margin / 2
    size = float((hi - lo).max(-1).values.median())
    if not size > 0:
        size = float((hi - lo).max()) or 1.0
    owner, cell, key = _cells(lo, hi, size)
    key, order = torch.sort(key, stable=True)
    owner, cell = owner[order], cell[order]
    # Pairs within each run of equal keys: entry p pairs with p+1 .. end-1 of its run.
    starts = torch.ones_like(key, dtype=torch.bool)
    starts[1:] = key[1:] != key[:-1]
    run = torch.cumsum(starts.long(), 0) - 1
    run_end = torch.cumsum(torch.bincount(run), 0)[run]
    count = run_end - 1 - torch.arange(key.shape[0])
    a = torch.repeat_interleave(torch.arange(key.shape[0]), count)
    b = a + 1 + torch.arange(a.shape[0]) - torch.repeat_interleave(torch.cumsum(count, 0) - count,
                                                                  count)
    i, j = owner.index_select(0, a), owner.index_select(0, b)
    lo_i, lo_j = lo.index_select(0, i), lo.index_select(0, j)
    overlap = ((lo_i <= hi.index_select(0, j)) & (lo_j <= hi.index_select(0, i))).all(-1)
    here = (torch.floor(torch.maximum(lo_i, lo_j) / size).long()
            == cell.index_select(0, a)).all(-1)
    keep = overlap & here
    i, j = i[keep], j[keep]
    code, _ = torch.sort(torch.minimum(i, j) * faces.shape[0] + torch.maximum(i, j))
    return torch.stack([code // faces.shape[0], code % faces.shape[0]], -1)


def _dot(x: Tensor, y: Tensor) -> Tensor:
    """``x · y`` over the last dimension (3), written out: several times faster than a
    reduction over a dimension of 3."""
    return x[..., 0] * y[..., 0] + x[..., 1] * y[..., 1] + x[..., 2] * y[..., 2]


def _triple(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    """``det[x, y, z] = (x × y) · z`` over the last dimension."""
    return _dot(torch.linalg.cross(x, y, dim=-1), z)


def _through_interior(p: Tensor, q: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Whether the line through ``p`` and ``q`` passes strictly inside the three edges of
    triangle ``abc`` (Plücker signs all alike), (N,) bool; all arguments (N, 3). With ``p`` and
    ``q`` strictly on opposite sides of the triangle's plane: whether segment ``pq`` passes
    through the triangle's interior."""
    d = q - p
    s0 = _triple(a - p, b - p, d)
    s1 = _triple(b - p, c - p, d)
    s2 = _triple(c - p, a - p, d)
    return ((s0 > 0) & (s1 > 0) & (s2 > 0)) | ((s0 < 0) & (s1 < 0) & (s2 < 0))


def face_normals(corners: Tensor) -> Tensor:
    """(..., 3) unnormalized normals ``(b - a) × (c - a)`` of (..., 3, 3) triangle corners."""
    return torch.linalg.cross(corners[..., 1, :] - corners[..., 0, :],
                              corners[..., 2, :] - corners[..., 0, :], dim=-1)


def shared_vertices(faces: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Which corners of each pair's faces the other face has too: ``(shared_i, shared_j)``,
    each (P, 3) bool (``shared_i[p, k]``: vertex k of face ``pairs[p, 0]`` is in the other)."""
    fi, fj = faces[pairs[:, 0]], faces[pairs[:, 1]]  # (P, 3)
    return (fi.unsqueeze(2) == fj.unsqueeze(1)).any(2), (fj.unsqueeze(2) == fi.unsqueeze(1)).any(2)


def _one_side(side: Tensor, shared: Tensor) -> Tensor:
    """(P,) bool: whether each face's corners (``side``: (P, 3) signed distances to the other
    face's plane) lie strictly on one side of it, its ``shared`` (P, 3) corners aside."""
    return ((side > 0) | shared).all(1) | ((side < 0) | shared).all(1)


def _pairs_intersect(corners: Tensor, faces: Tensor, pairs: Tensor,
                     shared: tuple[Tensor, Tensor] | None = None,
                     normals: Tensor | None = None) -> Tensor:
    """(P,) bool: do the faces of each pair intersect (see the module docstring); ``shared``:
    the pairs' :func:`shared_vertices`, ``normals``: the faces' (F, 3) :func:`face_normals`,
    if known (the same values either way)."""
    shared_i, shared_j = shared_vertices(faces, pairs) if shared is None else shared
    fi, fj = pairs[:, 0].contiguous(), pairs[:, 1].contiguous()
    ti, tj = corners.index_select(0, fi), corners.index_select(0, fj)  # (P, 3, 3)
    if normals is None:
        ni, nj = face_normals(ti), face_normals(tj)
    else:
        ni, nj = normals.index_select(0, fi), normals.index_select(0, fj)
    # Signed distances (times the normal's length) of each face's corners to the other's plane.
    side_i = _dot(ti - tj[:, :1], nj.unsqueeze(1))  # (P, 3)
    side_j = _dot(tj - ti[:, :1], ni.unsqueeze(1))
    # Pairs sharing an edge only touch; pairs with one face strictly on one side of the other's
    # plane (shared corners aside) cannot cross: the cheap early-out for most candidates.
    open_ = ((shared_i.sum(1) < 2) & ~_one_side(side_i, shared_i)
             & ~_one_side(side_j, shared_j))
    # Edge k of a face runs from corner k to corner k+1; it can cross the other face if its
    # ends lie strictly on opposite sides of that face's plane and neither end is shared.
    hit = torch.zeros(pairs.shape[0], dtype=torch.bool)
    for edges_of, side, shared_e, other in ((ti, side_i, shared_i, tj),
                                           (tj, side_j, shared_j, ti)):
        candidate = (open_.unsqueeze(1) & (side * side.roll(-1, 1) < 0)
                     & ~(shared_e | shared_e.roll(-1, 1)))  # (P, 3)
        pair, edge = candidate.nonzero(as_tuple=True)
        if pair.numel():
            o = other[pair]
            crosses = _through_interior(edges_of[pair, edge], edges_of[pair, (edge + 1) % 3],
                                        o[:, 0], o[:, 1], o[:, 2])
            hit[pair[crosses]] = True
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
    return pairs[_intersects(corners, faces, pairs)]


def _intersects(corners: Tensor, faces: Tensor, pairs: Tensor,
                shared: tuple[Tensor, Tensor] | None = None,
                normals: Tensor | None = None) -> Tensor:
    """(P,) bool: whether each of ``pairs`` intersects (:func:`_pairs_intersect`), tested
    :data:`PAIR_BLOCK` at a time."""
    hits = [torch.zeros(0, dtype=torch.bool)]
    for k in range(0, pairs.shape[0], PAIR_BLOCK):
        block = slice(k, k + PAIR_BLOCK)
        known = None if shared is None else (shared[0][block], shared[1][block])
        hits.append(_pairs_intersect(corners, faces, pairs[block], known, normals))
    return torch.cat(hits)


class SelfIntersections:
    """:func:`self_intersecting_pairs` / :func:`self_intersecting_faces` of one mesh topology
    over a sequence of nearby vertex states, with the broad phase's work kept between calls.

    The candidate pairs are found with boxes grown by ``margin`` (``margin_factor`` × the median
    face box size at the time) and kept, with their shared vertices and without the pairs that
    share an edge (they only touch), until a vertex has moved ``margin / 2`` or more along some
    axis from where they were found: until then a pair left out still has a gap between its
    boxes (each box edge moved less than ``margin / 2``). Each kept pair's answer is kept too
    and only the pairs with a vertex that changed since the last call are tested again (a step
    guard that undoes part of a step changes part of the mesh). The answers are exactly those
    of the functions above (tested).

    Args:
        faces: (F, 3) vertex indices (the topology is fixed).
        margin_factor: margin in median face box sizes.
    """

    def __init__(self, faces: Tensor, margin_factor: float = 0.5):
        self.faces = faces.detach().cpu().long()
        self.margin_factor = float(margin_factor)
        self.builds = 0  #: how many times the broad phase ran
        self.tested = 0  #: pairs given to the narrow phase, over all calls
        self._anchor: Tensor | None = None
        self._margin = 0.0

    def _build(self, vertices: Tensor) -> None:
        corners = vertices[self.faces]
        size = float((corners.max(1).values - corners.min(1).values).max(-1).values.median())
        self._margin = self.margin_factor * size
        pairs = candidate_pairs(vertices, self.faces, margin=self._margin)
        shared_i, shared_j = shared_vertices(self.faces, pairs)
        keep = shared_i.sum(1) < 2
        self._pairs, self._shared = pairs[keep], (shared_i[keep], shared_j[keep])
        self._disjoint = ~self._shared[0].any(1)  # no shared vertex: boxes may come apart
        self._first, self._second = self._pairs[:, 0].contiguous(), self._pairs[:, 1].contiguous()
        self._corners = self.faces[self._pairs].flatten()  # (P * 6,) the pairs' vertices
        self._hit: Tensor | None = None  # (P,) bool answers at self._last
        self._anchor = vertices.clone()
        self.builds += 1

    @property
    def kept_pairs(self) -> int:
        """How many candidate pairs the broad phase keeps now (0 before the first call)."""
        return 0 if self._anchor is None else int(self._pairs.shape[0])

    def pairs(self, vertices: Tensor) -> Tensor:
        """Pairs of faces ``(i, j)``, ``i < j``, that pass through each other, (P, 2) long
        (CPU), in the order :func:`self_intersecting_pairs` gives them.

        Args:
            vertices: (V, 3) positions (tested in float64 on the CPU).
        """
        v = vertices.detach().double().cpu()
        if (self._anchor is None or not self._margin > 0
                or not float((v - self._anchor).abs().max()) < self._margin / 2):
            self._build(v)
        corners = v[self.faces]
        # The pairs to test: all after a build, else those with a vertex that changed.
        if self._hit is None:
            hit = torch.zeros(self._pairs.shape[0], dtype=torch.bool)
            index = torch.arange(self._pairs.shape[0])
        else:
            hit = self._hit.clone()
            changed = (v != self._last).any(1).index_select(0, self._corners)
            index = changed.view(-1, 6).any(1).nonzero().squeeze(1)
            hit[index] = False
        # Pairs without a shared vertex whose boxes do not overlap now cannot intersect.
        lo, hi = corners.min(1).values, corners.max(1).values
        i, j = self._first.index_select(0, index), self._second.index_select(0, index)
        lo_i, hi_i, lo_j, hi_j = (x.index_select(0, k) for x, k in ((lo, i), (hi, i), (lo, j),
                                                                    (hi, j)))
        near = ((lo_i <= hi_j) & (lo_j <= hi_i)).all(-1)
        index = index[~self._disjoint.index_select(0, index) | near]
        self.tested += int(index.shape[0])
        hit[index] = _intersects(corners, self.faces, self._pairs.index_select(0, index),
                                 (self._shared[0].index_select(0, index),
                                  self._shared[1].index_select(0, index)),
                                 face_normals(corners))
        self._hit, self._last = hit, v.clone()
        return self._pairs[hit]

    def involved(self, vertices: Tensor) -> Tensor:
        """(F,) bool: faces involved in at least one self-intersection."""
        involved = torch.zeros(self.faces.shape[0], dtype=torch.bool)
        involved[self.pairs(vertices).flatten()] = True
        return involved


def self_intersecting_faces(vertices: Tensor, faces: Tensor) -> Tensor:
    """(F,) bool: faces involved in at least one self-intersection."""
    involved = torch.zeros(faces.shape[0], dtype=torch.bool)
    involved[self_intersecting_pairs(vertices, faces).flatten()] = True
    return involved


def self_intersection_fraction(vertices: Tensor, faces: Tensor) -> float:
    """Fraction of faces involved in a self-intersection (0 for an embedded surface)."""
    return float(self_intersecting_faces(vertices, faces).float().mean())
