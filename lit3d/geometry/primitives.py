"""Initial meshes: the sheet and the ico-sphere of the 3D-MEI paper.

Each class is a small, config-friendly *mesh source*: construct it with its parameters (from YAML
through ``class_path``), call :meth:`build` to get a :class:`~lit3d.geometry.mesh.Mesh`.
"""

from __future__ import annotations

import torch

from lit3d.geometry.mesh import Mesh


class MeshSource:
    """Base class of everything that can produce the initial mesh of an optimization."""

    def build(self) -> Mesh:  # pragma: no cover - interface
        raise NotImplementedError


class Sheet(MeshSource):
    """A flat square sheet in the ``z = 0`` plane, facing ``+z`` (the overhead camera).

    Args:
        resolution: number of quads along each side; the sheet has ``(resolution + 1)**2``
            vertices and ``2 * resolution**2`` triangles.
        size: side length in world units; the sheet spans ``[-size/2, size/2]`` in x and y.
    """

    def __init__(self, resolution: int = 48, size: float = 2.0):
        if resolution < 1:
            raise ValueError(f"Sheet.resolution must be >= 1, got {resolution}")
        if size <= 0:
            raise ValueError(f"Sheet.size must be > 0, got {size}")
        self.resolution = int(resolution)
        self.size = float(size)

    def build(self) -> Mesh:
        n = self.resolution + 1
        coords = torch.linspace(-self.size / 2, self.size / 2, n)
        y, x = torch.meshgrid(coords, coords, indexing="ij")  # row i <-> y, column j <-> x
        vertices = torch.stack([x.flatten(), y.flatten(), torch.zeros(n * n)], dim=-1)
        index = torch.arange(n * n).reshape(n, n)
        a, b = index[:-1, :-1].flatten(), index[:-1, 1:].flatten()
        c, d = index[1:, :-1].flatten(), index[1:, 1:].flatten()
        # Counter-clockwise seen from +z: normals point at the camera.
        faces = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)], dim=0)
        return Mesh(vertices, faces)


class IcoSphere(MeshSource):
    """An ico-sphere centred at the origin with outward normals (``trimesh.creation.icosphere``).

    Args:
        subdivisions: number of 4-to-1 subdivisions of the icosahedron; the sphere has
            ``10 * 4**subdivisions + 2`` vertices.
        radius: sphere radius in world units.
    """

    def __init__(self, subdivisions: int = 3, radius: float = 1.0):
        if subdivisions < 0:
            raise ValueError(f"IcoSphere.subdivisions must be >= 0, got {subdivisions}")
        if radius <= 0:
            raise ValueError(f"IcoSphere.radius must be > 0, got {radius}")
        self.subdivisions = int(subdivisions)
        self.radius = float(radius)

    def build(self) -> Mesh:
        import trimesh

        mesh = trimesh.creation.icosphere(subdivisions=self.subdivisions, radius=self.radius)
        return Mesh(
            torch.as_tensor(mesh.vertices, dtype=torch.float32),
            torch.as_tensor(mesh.faces, dtype=torch.long),
        )


class Torus(MeshSource):
    """A torus around the ``z`` axis (genus 1): ring radius ``major``, tube radius ``minor``,
    ``segments × tube_segments`` vertices on a (u, v) grid, outward normals.

    ``tube_radius(u, v)`` and ``ring_radius(u)`` may be overridden for procedural genus-1
    shapes (:class:`~lit3d.geometry.procedural.BumpyTorus`).
    """

    def __init__(self, major: float = 1.0, minor: float = 0.4, segments: int = 48,
                 tube_segments: int = 24):
        if not 0 < minor < major:
            raise ValueError(f"Torus needs 0 < minor < major, got {minor}, {major}")
        if segments < 3 or tube_segments < 3:
            raise ValueError("Torus needs at least 3 segments each way")
        self.major, self.minor = float(major), float(minor)
        self.segments, self.tube_segments = int(segments), int(tube_segments)

    def ring_radius(self, u: torch.Tensor) -> torch.Tensor:
        return torch.full_like(u, self.major)

    def tube_radius(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.full_like(u, self.minor)

    def build(self) -> Mesh:
        import math

        n, m = self.segments, self.tube_segments
        u = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
        v = torch.arange(m, dtype=torch.float64) * (2 * math.pi / m)
        u, v = torch.meshgrid(u, v, indexing="ij")
        ring, tube = self.ring_radius(u), self.tube_radius(u, v)
        radial = ring + tube * torch.cos(v)
        vertices = torch.stack([radial * torch.cos(u), radial * torch.sin(u),
                                tube * torch.sin(v)], -1).reshape(-1, 3)
        i, j = torch.meshgrid(torch.arange(n), torch.arange(m), indexing="ij")
        a, b = i * m + j, ((i + 1) % n) * m + j
        c, d = ((i + 1) % n) * m + (j + 1) % m, i * m + (j + 1) % m
        faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3),
                           torch.stack([a, c, d], -1).reshape(-1, 3)])
        return Mesh(vertices.float(), faces.long())
