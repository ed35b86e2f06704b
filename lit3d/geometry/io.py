"""Mesh file I/O through trimesh (OBJ, PLY, GLB, STL, OFF, ...), with errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit3d.geometry.mesh import Mesh, validate_mesh
from lit3d.geometry.primitives import MeshSource


def load_mesh(path: str | Path) -> Mesh:
    """Loads a triangle mesh from a file.

    Multi-object scenes (GLB/GLTF) are concatenated into one mesh. Raises ``FileNotFoundError``
    for a missing file and ``ValueError`` for an unreadable, empty, non-triangle or non-finite mesh.
    """
    import trimesh

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for corrupt files
        raise ValueError(f"could not read mesh file {path}: {err}") from err
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"mesh file {path} holds no triangle faces")
    faces = np.asarray(loaded.faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"mesh file {path}: faces must be triangles, got shape {faces.shape}")
    vertices = torch.as_tensor(np.asarray(loaded.vertices), dtype=torch.float32)
    faces_t = torch.as_tensor(faces, dtype=torch.long)
    validate_mesh(vertices, faces_t, name=f"mesh file {path}")
    return Mesh(vertices, faces_t)


def save_mesh(path: str | Path, vertices: Tensor, faces: Tensor) -> Path:
    """Writes ``(vertices (V, 3), faces (F, 3))`` to ``path``; the format follows the suffix."""
    import trimesh

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh = trimesh.Trimesh(
        vertices=vertices.detach().cpu().double().numpy(),
        faces=faces.detach().cpu().numpy(),
        process=False,
    )
    mesh.export(str(path))
    return path


class MeshFile(MeshSource):
    """Initial mesh read from a file (see :func:`load_mesh`).

    Args:
        path: mesh file path.
        center: translate the bounding-box centre to the origin.
        scale: if set, scale uniformly so the bounding-box diagonal equals this (world units).
    """

    def __init__(self, path: str, center: bool = True, scale: float | None = None):
        self.path = path
        self.center = center
        self.scale = scale

    def build(self) -> Mesh:
        vertices, faces = load_mesh(self.path)
        lo, hi = vertices.min(0).values, vertices.max(0).values
        if self.center:
            vertices = vertices - (lo + hi) / 2
        if self.scale is not None:
            vertices = vertices * (self.scale / torch.linalg.vector_norm(hi - lo))
        return Mesh(vertices, faces)
