"""Mesh file I/O through trimesh (OBJ, PLY, GLB, STL, OFF, ...), with errors that name the
problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit3d.geometry.mesh import Mesh, validate_mesh
from lit3d.geometry.primitives import MeshSource


def declared_face_count(path: Path) -> int | None:
    """Number of faces (polygons of any size) the file declares, for OBJ, PLY and OFF; ``None``
    for other formats (which store triangles only, or are not inspected)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            with path.open("rb") as handle:
                return sum(1 for line in handle if line.startswith((b"f ", b"f\t")))
        if suffix == ".ply":
            with path.open("rb") as handle:
                for _ in range(200):
                    line = handle.readline()
                    if not line or line.strip() == b"end_header":
                        break
                    parts = line.split()
                    if parts[:2] == [b"element", b"face"] and len(parts) == 3:
                        return int(parts[2])
            return None
        if suffix == ".off":
            tokens = [line.split() for line in path.read_text(errors="replace").splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
            counts = tokens[1] if tokens and tokens[0] == ["OFF"] else tokens[0][1:]
            return int(counts[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def load_mesh(path: str | Path, triangulate: bool = False) -> Mesh:
    """Loads a triangle mesh from a file.

    Multi-object scenes (GLB/GLTF) are concatenated into one mesh. Raises ``FileNotFoundError``
    for a missing file and ``ValueError`` for an unreadable, empty or non-finite mesh, and for
    one with non-triangle faces (quads, polygons) unless ``triangulate`` (then trimesh's fan
    triangulation is kept).
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
    declared = declared_face_count(path)
    if not triangulate and declared is not None and declared != len(faces):
        raise ValueError(
            f"mesh file {path} has non-triangle faces: its {declared} faces (quads or "
            f"polygons) make {len(faces)} triangles; lit3d needs a triangle mesh. Triangulate "
            "it, or set `triangulate: true` on the MeshFile to accept a fan triangulation")
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
    """Initial or target mesh read from a file or a URL (see :func:`load_mesh`).

    Args:
        path: mesh file path, or an ``http(s)://`` / ``file://`` URL downloaded once into the
            cache (``$LIT3D_CACHE``) and re-used.
        sha256: checksum of the file (full hex digest or prefix); verified when given. Without
            one, the digest of a downloaded file is logged so a config can pin it.
        member: for a ``.tar``/``.tar.gz``/``.zip`` archive, the mesh file inside it (extracted
            once next to the archive), e.g. ``dragon_recon/dragon_vrip_res3.ply``.
        center: translate the bounding-box centre to the origin.
        scale: if set, scale uniformly so the bounding-box diagonal equals this (world units).
        triangulate: accept quads and polygons (fan-triangulated); by default they are an error.
    """

    def __init__(self, path: str, sha256: str | None = None, member: str | None = None,
                 center: bool = True, scale: float | None = None, triangulate: bool = False):
        if scale is not None and not scale > 0:
            raise ValueError(f"MeshFile.scale must be > 0, got {scale}")
        from lit3d._compat import nullable

        self.path = path
        self.sha256 = nullable(sha256)
        self.member = nullable(member)
        self.center = center
        self.scale = scale
        self.triangulate = bool(triangulate)

    def local_path(self) -> Path:
        """The file on disk (downloaded, verified and extracted if ``path`` is a URL/archive)."""
        from lit3d.assets import fetch_asset

        return fetch_asset(self.path, self.sha256, self.member, what="mesh")

    def build(self) -> Mesh:
        vertices, faces = load_mesh(self.local_path(), self.triangulate)
        lo, hi = vertices.min(0).values, vertices.max(0).values
        if self.center:
            vertices = vertices - (lo + hi) / 2
        if self.scale is not None:
            vertices = vertices * (self.scale / torch.linalg.vector_norm(hi - lo))
        return Mesh(vertices, faces)
