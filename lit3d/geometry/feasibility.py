"""Admissible deformations: no new self-intersections, bounded growth; steps undone where not.

An optimizer step moves every parameter from ``before`` to ``after``. :func:`keep_admissible`
keeps the step where the mesh it makes is admissible and undoes it where it is not:

1. *locally*: the parameters of every kernel (or vertex) that reaches a face the step made
   intersect are put back, and the mesh is tested again (a few rounds, the region growing with
   what each round finds), so a fold closing somewhere does not stop the rest of the surface;
2. *globally* when that does not suffice (or the area bound is broken): the remaining step is
   halved until admissible, or undone.

Because the starting mesh is admissible and every kept state is tested, the mesh stays admissible
for the whole run: the guarantee does not depend on penalty weights. A step that carried a fold
completely through another part of the surface would not be seen (the test is on the end state),
but a connected surface cannot do that without still crossing somewhere at the end of the step,
and steps are far smaller than folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from lit3d.geometry.intersections import SelfIntersections
from lit3d.geometry.regularizers import face_areas


class Admissible:
    """Test of deformed vertices: no face intersects another unless it already did in the
    reference mesh (none, for a clean start; a tolerated face that comes free is no longer
    tolerated), and area at most ``max_area_ratio`` × the rest area (or the reference's area,
    if that is larger already).

    Args:
        faces: (F, 3) faces of the mesh.
        rest_vertices: (V, 3) initial mesh (area reference).
        intersections: check self-intersections.
        max_area_ratio: bound on the area growth, ``None`` for none.
    """

    def __init__(self, faces: Tensor, rest_vertices: Tensor, intersections: bool = True,
                 max_area_ratio: float | None = None):
        self.faces = faces.detach().cpu().long()
        self.num_vertices = int(rest_vertices.shape[0])
        self.intersections = intersections
        self.rest_area = float(face_areas(rest_vertices.detach().double().cpu(), self.faces).sum())
        self.max_area_ratio = max_area_ratio
        self._self_intersections = SelfIntersections(self.faces)  # broad phase kept across steps
        self._tolerated = torch.zeros(self.faces.shape[0], dtype=torch.bool)
        self._allowed_area = float("inf")

    def reference(self, vertices: Tensor) -> None:
        """Sets the tolerances from ``vertices`` (the mesh the run starts or resumes from)."""
        v = vertices.detach().double().cpu()
        if self.intersections:
            self._tolerated = self._self_intersections.involved(v)
        if self.max_area_ratio is not None:
            area = float(face_areas(v, self.faces).sum())
            self._allowed_area = max(self.max_area_ratio * self.rest_area, area)

    def violation(self, vertices: Tensor) -> Tensor | None:
        """``None`` if ``vertices`` are admissible; else (V,) bool of the vertices of the
        offending faces, all ``True`` when the whole mesh is at fault (non-finite positions,
        area bound). An admissible answer also drops from the tolerated faces those that no
        longer intersect (the caller keeps that mesh)."""
        v = vertices.detach().double().cpu()
        everything = torch.ones(self.num_vertices, dtype=torch.bool)
        if not bool(torch.isfinite(v).all()):
            return everything
        if (self.max_area_ratio is not None
                and float(face_areas(v, self.faces).sum()) > self._allowed_area):
            return everything
        if self.intersections:
            bad = self._self_intersections.involved(v)
            new = bad & ~self._tolerated
            if bool(new.any()):
                vertices_bad = torch.zeros(self.num_vertices, dtype=torch.bool)
                vertices_bad[self.faces[new].flatten()] = True
                return vertices_bad
            self._tolerated &= bad
        return None

    def __call__(self, vertices: Tensor) -> bool:
        return self.violation(vertices) is None


@torch.no_grad()
def keep_admissible(params: Sequence[Tensor], before: Sequence[Tensor],
                    violation: Callable[[], Tensor | None],
                    reach: Callable[[Tensor], Tensor], local_rounds: int = 3,
                    halvings: int = 4) -> Tensor:
    """Undoes the step ``before -> params`` (in place) where it breaks admissibility.

    Args:
        params: parameters after the step, each with a leading dimension of K entries (one
            per kernel / vertex: e.g. RBF offsets (K, 3) and log-scales (K,)); changed in place.
        before: their values before the step.
        violation: ``None`` if the mesh of the current ``params`` is admissible, else (V,) bool
            of the offending vertices (all ``True``: the whole mesh is at fault).
        reach: ``(offending (V,) bool, widen)`` -> (K,) bool entries whose parameters move
            those vertices; ``widen`` (1, 2, 4, ...) doubles the reach every round, so a
            region that still fails undoes a wider neighbourhood next time.
        local_rounds: rounds of local undoing before the global halving.
        halvings: global fractions tried after that: 1/2, ..., 1/2**halvings.

    Returns:
        (K,) float: the fraction of its step each entry kept (1 everywhere when the whole step
        was admissible).
    """
    kept = torch.ones(before[0].shape[0], device=before[0].device)
    bad = violation()
    if bad is None:
        return kept
    after = [p.detach().clone() for p in params]
    undone = torch.zeros_like(kept, dtype=torch.bool)
    for round_ in range(local_rounds):
        if bool(bad.all()):
            break
        undone |= reach(bad.to(undone.device), 2 ** round_)
        for p, b in zip(params, before):
            p[undone] = b[undone]
        bad = violation()
        if bad is None:
            kept[undone] = 0.0
            return kept
    kept[undone] = 0.0
    fraction = 1.0
    for _ in range(halvings):
        fraction /= 2
        for p, b, a in zip(params, before, after):
            p.copy_(b + fraction * kept.view(-1, *[1] * (a.ndim - 1)) * (a - b))
        if violation() is None:
            return kept * fraction
    for p, b in zip(params, before):
        p.copy_(b)
    return torch.zeros_like(kept)


#: Optimizer-state keys of first moments (torch's Adam and :class:`UniformAdam`).
FIRST_MOMENT_KEYS = ("exp_avg", "g1")


@torch.no_grad()
def forget_undone(optimizer: torch.optim.Optimizer, params: Sequence[Tensor],
                  undone: Tensor) -> None:
    """Zeroes the first moment (Adam's momentum) of the ``undone`` (K,) entries of ``params``,
    so their next steps follow the new gradient instead of the momentum that drove them into a
    contact. The second moments are kept: zeroed too, Adam's bias correction would make the
    next steps of those entries about 3x larger than usual, back into the contact."""
    if not bool(undone.any()):
        return
    for p in params:
        state = optimizer.state.get(p, {})
        for key in FIRST_MOMENT_KEYS:
            value = state.get(key)
            if isinstance(value, Tensor) and value.shape[:1] == undone.shape:
                value[undone] = 0
