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
