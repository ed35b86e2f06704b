"""Isotropic remeshing (Botsch & Kobbelt 2004, via gpytoolbox), as MRD remeshes during shape
reconstruction: split long edges, collapse short ones, flip to regular valence, smooth
tangentially and project back onto the input surface, towards a target edge length."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from lit3d.geometry.mesh import validate_mesh
from lit3d.geometry.regularizers import edge_lengths
from lit3d.geometry.topology import edges_from_faces


def mean_edge_length(vertices: Tensor, faces: Tensor) -> float:
    """Mean edge length of a mesh, world units."""
    return float(edge_lengths(vertices, edges_from_faces(faces)).mean())


def remesh(vertices: Tensor, faces: Tensor, target_edge_length: float | None = None,
           iterations: int = 10) -> tuple[Tensor, Tensor]:
    """Botsch-Kobbelt remeshing of a (V, 3) / (F, 3) mesh.

    Args:
        target_edge_length: edge length to reach, world units; default half the current mean
            edge length (as Large Steps does: MRD's reference code passed ``h=None``, which keeps
            the current length and never refines).
        iterations: remeshing passes.

    Returns:
        New ``(vertices (V', 3), faces (F', 3))`` on the input's device and dtypes.
    """
    validate_mesh(vertices, faces, name="mesh to remesh")
    with warnings.catch_warnings():  # gpytoolbox imports deprecated numpy/scipy paths
        warnings.simplefilter("ignore", DeprecationWarning)
        import gpytoolbox

    h = target_edge_length
    if h is None:
        h = 0.5 * mean_edge_length(vertices, faces)
    if not h > 0:
        raise ValueError(f"target_edge_length must be > 0, got {h}")
    v = vertices.detach().cpu().double().numpy()
    f = faces.detach().cpu().numpy().astype(np.int32)
    new_v, new_f = gpytoolbox.remesh_botsch(v, f, i=int(iterations), h=float(h), project=True)
    return (torch.as_tensor(new_v, dtype=vertices.dtype, device=vertices.device),
            torch.as_tensor(np.asarray(new_f, dtype=np.int64), device=faces.device))
