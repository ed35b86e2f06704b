"""Procedural target shapes (no download): the MRD demo's genus-0 targets and a genus-1 one.

Each is a star-shaped surface around the origin, built by moving the vertices of an ico-sphere
along their directions to the surface (``v = r(d)·d``): explicitly for :class:`StarShape`,
by bisection of a signed distance function along each ray for :class:`RoundedBox` and
:class:`Capsule` (exact for convex shapes containing the origin). All sizes in world units.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lit3d.data.views import fibonacci_directions
from lit3d.geometry.mesh import Mesh
from lit3d.geometry.primitives import IcoSphere, MeshSource, Torus


def radius_from_sdf(sdf: Callable[[Tensor], Tensor], directions: Tensor, r_max: float,
                    iterations: int = 40) -> Tensor:
    """(N,) distance along each unit ``direction`` (N, 3) from the origin to the zero level of
    ``sdf`` (points (N, 3) -> (N,), negative inside), by bisection on ``[0, r_max]``.
    Requires ``sdf(0) < 0 < sdf(r_max·d)`` and one crossing per ray (star-shaped surfaces)."""
    lo = torch.zeros(directions.shape[0], dtype=directions.dtype)
    hi = torch.full_like(lo, float(r_max))
    if (sdf(hi[:, None] * directions) <= 0).any():
        raise ValueError("r_max does not enclose the shape")
    for _ in range(iterations):
        mid = (lo + hi) / 2
        inside = sdf(mid[:, None] * directions) < 0
        lo, hi = torch.where(inside, mid, lo), torch.where(inside, hi, mid)
    return (lo + hi) / 2


class _RadialShape(MeshSource):
    def __init__(self, subdivisions: int):
        if subdivisions < 0:
            raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
        self.subdivisions = int(subdivisions)

    def radius(self, directions: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def build(self) -> Mesh:
        sphere = IcoSphere(self.subdivisions, 1.0).build()
        directions = sphere.vertices.double()
        directions = directions / directions.norm(dim=-1, keepdim=True)
        vertices = self.radius(directions)[:, None] * directions
        return Mesh(vertices.float(), sphere.faces)


class StarShape(_RadialShape):
    """A blobby star: ``r(d) = radius·(1 + amplitude·Σ_i max(0, d·c_i)^sharpness)`` with
    ``lobes`` lobe directions ``c_i`` on the Fibonacci lattice (rotated by ``seed``).

    Args:
        lobes: number of bumps.
        amplitude: bump height relative to ``radius``.
        sharpness: exponent of the bumps (larger: narrower lobes).
        radius: base radius, world units.
        subdivisions: ico-sphere subdivisions (``10·4^s + 2`` vertices).
        seed: random rotation of the lobe directions (0: none).
    """

    def __init__(self, lobes: int = 6, amplitude: float = 0.35, sharpness: float = 8.0,
                 radius: float = 0.8, subdivisions: int = 5, seed: int = 0):
        super().__init__(subdivisions)
        if lobes < 0 or amplitude < 0 or sharpness <= 0 or radius <= 0:
            raise ValueError("StarShape needs lobes >= 0, amplitude >= 0, sharpness > 0, "
                             "radius > 0")
        self.lobes, self.amplitude = int(lobes), float(amplitude)
        self.sharpness, self.base_radius, self.seed = float(sharpness), float(radius), int(seed)

    def lobe_directions(self) -> Tensor:
        """(lobes, 3) unit lobe directions."""
        c = fibonacci_directions(max(self.lobes, 1))[: self.lobes].double()
        if self.seed:
            g = torch.Generator().manual_seed(self.seed)
            q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
            c = c @ q.T
        return c

    def radius(self, directions: Tensor) -> Tensor:
        bumps = (directions @ self.lobe_directions().T).clamp(min=0).pow(self.sharpness)
        return self.base_radius * (1 + self.amplitude * bumps.sum(-1))


class RoundedBox(_RadialShape):
    """A box of half-extents ``half_size`` (x, y, z) with edges rounded by ``rounding``
    (the offset surface of the inner box ``half_size − rounding``)."""

    def __init__(self, half_size: tuple[float, float, float] = (0.9, 0.6, 0.45),
                 rounding: float = 0.15, subdivisions: int = 5):
        super().__init__(subdivisions)
        half = torch.as_tensor(half_size, dtype=torch.float64).reshape(-1)
        if half.numel() != 3 or (half <= 0).any() or not 0 <= rounding < float(half.min()):
            raise ValueError("RoundedBox needs three half sizes > 0 and 0 <= rounding < "
                             "the smallest one")
        self.half_size, self.rounding = half, float(rounding)

    def sdf(self, points: Tensor) -> Tensor:
        q = points.abs() - (self.half_size - self.rounding)
        outside = q.clamp(min=0).norm(dim=-1)
        inside = q.max(dim=-1).values.clamp(max=0)
        return outside + inside - self.rounding

    def radius(self, directions: Tensor) -> Tensor:
        return radius_from_sdf(self.sdf, directions, 2 * float(self.half_size.norm()))


class Capsule(_RadialShape):
    """Points within ``radius`` of the segment from ``(0, 0, −half_length)`` to
    ``(0, 0, half_length)``: a cylinder with hemispherical caps, along ``+z``."""

    def __init__(self, radius: float = 0.45, half_length: float = 0.5, subdivisions: int = 5):
        super().__init__(subdivisions)
        if radius <= 0 or half_length < 0:
            raise ValueError("Capsule needs radius > 0 and half_length >= 0")
        self.capsule_radius, self.half_length = float(radius), float(half_length)

    def sdf(self, points: Tensor) -> Tensor:
        z = points[..., 2].clamp(-self.half_length, self.half_length)
        nearest = torch.stack([torch.zeros_like(z), torch.zeros_like(z), z], dim=-1)
        return (points - nearest).norm(dim=-1) - self.capsule_radius

    def radius(self, directions: Tensor) -> Tensor:
        return radius_from_sdf(self.sdf, directions,
                               2 * (self.capsule_radius + self.half_length))


class Peanut(_RadialShape):
    """Two overlapping spheres of ``radius`` centred at ``(0, 0, ±offset)``: a peanut along
    ``+z`` whose waist (radius ``sqrt(radius² − offset²)`` at ``z = 0``) is a concavity that a
    reconstruction can leave filled in (:func:`lit3d.metrics.chamfer.surface_distances`)."""

    def __init__(self, radius: float = 0.6, offset: float = 0.45, subdivisions: int = 5):
        super().__init__(subdivisions)
        if radius <= 0 or not 0 <= offset < radius:
            raise ValueError("Peanut needs radius > 0 and 0 <= offset < radius")
        self.sphere_radius, self.offset = float(radius), float(offset)

    def sdf(self, points: Tensor) -> Tensor:
        centre = torch.tensor([0.0, 0.0, self.offset], dtype=points.dtype)
        return torch.minimum((points - centre).norm(dim=-1),
                             (points + centre).norm(dim=-1)) - self.sphere_radius

    def radius(self, directions: Tensor) -> Tensor:
        return radius_from_sdf(self.sdf, directions, 2 * (self.sphere_radius + self.offset))


class BumpyTorus(Torus):
    """A genus-1 target (the 3D-MEI paper's teapot-like genus-1 shape, procedurally): a torus
    whose ring is squashed into an ellipse (``ellipticity``) and whose tube swells into
    ``bumps`` bulges of relative size ``amplitude`` around the ring.

    Args:
        major, minor, segments, tube_segments: as :class:`~lit3d.geometry.primitives.Torus`.
    """

    def __init__(self, major: float = 1.0, minor: float = 0.35, bumps: int = 3,
                 amplitude: float = 0.4, ellipticity: float = 0.15, segments: int = 64,
                 tube_segments: int = 24):
        super().__init__(major, minor, segments, tube_segments)
        if bumps < 0 or amplitude < 0 or not 0 <= ellipticity < 0.5:
            raise ValueError("BumpyTorus needs bumps >= 0, amplitude >= 0, 0 <= ellipticity "
                             "< 0.5")
        if minor * (1 + amplitude) >= major * (1 - ellipticity):
            raise ValueError("BumpyTorus would self-intersect: the swollen tube reaches the axis")
        self.bumps, self.amplitude, self.ellipticity = int(bumps), float(amplitude), float(
            ellipticity)

    def ring_radius(self, u: Tensor) -> Tensor:
        return self.major * (1 + self.ellipticity * torch.cos(2 * u))

    def tube_radius(self, u: Tensor, v: Tensor) -> Tensor:
        return self.minor * (1 + self.amplitude * torch.cos(self.bumps * u).clamp(min=0))
