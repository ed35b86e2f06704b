"""Physical plausibility of a stimulus mesh: could it be made, and is it the object the model saw?

:func:`plausibility` measures a deformed mesh against its initial (rest) mesh and the camera it
was optimized for:

- ``self_intersections``: fraction of faces that pass through another face
  (:mod:`lit3d.geometry.intersections`; 0 for a surface that could exist physically);
- ``area_ratio``: surface area over the initial mesh's area (growth);
- ``extents``: the axis-aligned bounding box's size (x, y, z), world units, and
  ``extent_over_view``: its largest side over the width of the camera's view at its target;
- ``in_view_fraction``: share of the surface area (by face centroids) inside the camera's frame;
- for a closed initial mesh, ``closed`` (every edge shared by exactly two consistently oriented
  faces, coincident vertices merged first, so a pinch shows) and ``genus`` (from the Euler
  characteristic), with ``same_genus`` against the initial mesh.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.geometry.intersections import self_intersection_fraction
from lit3d.geometry.regularizers import face_areas


def view_width(views: Views) -> float:
    """Width (world units) of the first view's square frame at the distance of its target."""
    distance = float((views.camera_target[0] - views.camera_position[0]).norm())
    return 2.0 * distance * math.tan(math.radians(float(views.fov_deg[0])) / 2.0)


def in_view(points: Tensor, views: Views) -> Tensor:
    """(N,) bool: points (N, 3) in front of the first view's camera and inside its frame."""
    position, target = views.camera_position[0].to(points), views.camera_target[0].to(points)
    forward = torch.nn.functional.normalize(target - position, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, views.camera_up[0]
                                                             .to(points), dim=0), dim=0)
    up = torch.linalg.cross(right, forward, dim=0)
    rel = points - position
    depth = rel @ forward
    half = math.tan(math.radians(float(views.fov_deg[0])) / 2.0)
    x, y = rel @ right, rel @ up
    limit = half * depth.clamp(min=0)
    return (depth > 0) & (x.abs() <= limit) & (y.abs() <= limit)


def topology(vertices: Tensor, faces: Tensor) -> dict[str, Any]:
    """``closed`` (watertight after merging coincident vertices) and ``genus`` (summed over
    connected components; only meaningful when closed)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices.detach().double().cpu().numpy(),
                           faces.detach().cpu().numpy(), process=False)
    mesh.merge_vertices()
    genus = (2 * int(mesh.body_count) - int(mesh.euler_number)) / 2
    return {"closed": bool(mesh.is_watertight), "genus": genus}


def plausibility(vertices: Tensor, faces: Tensor, rest_vertices: Tensor | None = None,
                 views: Views | None = None) -> dict[str, Any]:
    """The measures listed in the module docstring (floats, lists and bools: JSON-ready).

    Args:
        vertices: (V, 3) deformed mesh, world units.
        faces: (F, 3) its faces (shared with the rest mesh).
        rest_vertices: (V, 3) the initial mesh (for ``area_ratio`` and the topology measures).
        views: the camera(s) the stimulus was made for; the first one is used.
    """
    vertices = vertices.detach().double().cpu()
    faces = faces.detach().cpu().long()
    areas = face_areas(vertices, faces)
    extents = (vertices.max(0).values - vertices.min(0).values).tolist()
    out: dict[str, Any] = {
        "self_intersections": self_intersection_fraction(vertices, faces),
        "area": float(areas.sum()),
        "extents": [round(e, 6) for e in extents],
    }
    if rest_vertices is not None:
        rest = rest_vertices.detach().double().cpu()
        out["area_ratio"] = float(areas.sum() / face_areas(rest, faces).sum())
        initial = topology(rest, faces)
        if initial["closed"]:
            now = topology(vertices, faces)
            out.update(closed=now["closed"], genus=now["genus"],
                       same_genus=now["genus"] == initial["genus"])
    if views is not None:
        width = view_width(views)
        centroids = vertices[faces].mean(1)
        inside = in_view(centroids, views.to(torch.float64))
        out.update(view_width=width, extent_over_view=max(extents) / width,
                   in_view_fraction=float(areas[inside].sum() / areas.sum().clamp(min=1e-30)))
    return out
