"""The triangle mesh value type shared by every stage of the pipeline."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Mesh(NamedTuple):
    """A triangle mesh.

    Attributes:
        vertices: (V, 3) float tensor of positions, world units.
        faces: (F, 3) long tensor of vertex indices, counter-clockwise seen from outside
            (so the geometric normal points outwards / towards the camera for the sheet).
    """

    vertices: Tensor
    faces: Tensor

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[-2])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def to(self, *args, **kwargs) -> "Mesh":
        """Moves the vertices (dtype/device) and the faces (device only)."""
        vertices = self.vertices.to(*args, **kwargs)
        return Mesh(vertices, self.faces.to(vertices.device))


def validate_mesh(vertices: Tensor, faces: Tensor, name: str = "mesh") -> None:
    """Raises ``ValueError`` naming the problem if ``(vertices, faces)`` is not a usable mesh.

    Checks: vertices (V, 3) finite floats with V >= 3; faces (F, 3) integer indices in
    ``[0, V)`` with F >= 1.
    """
    if vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"{name}: vertices must have shape (V, 3), got {tuple(vertices.shape)}")
    if vertices.shape[0] < 3:
        raise ValueError(f"{name}: needs at least 3 vertices, got {vertices.shape[0]}")
    if not torch.is_floating_point(vertices):
        raise ValueError(f"{name}: vertices must be floating point, got {vertices.dtype}")
    bad = ~torch.isfinite(vertices).all(dim=-1)
    if bad.any():
        raise ValueError(
            f"{name}: {int(bad.sum())} {'vertex is' if int(bad.sum()) == 1 else 'vertices are'} "
            f"NaN or Inf (first index {int(bad.nonzero()[0])})"
        )
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(
            f"{name}: faces must be triangles with shape (F, 3), got {tuple(faces.shape)}"
        )
    if faces.shape[0] < 1:
        raise ValueError(f"{name}: has no faces")
    if torch.is_floating_point(faces):
        raise ValueError(f"{name}: faces must be integer indices, got {faces.dtype}")
    if int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[0]:
        raise ValueError(
            f"{name}: face indices must lie in [0, {vertices.shape[0]}), "
            f"got [{int(faces.min())}, {int(faces.max())}]"
        )
