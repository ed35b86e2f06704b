"""Distances between meshes from points sampled on their surfaces: symmetric Chamfer and
two-sided Hausdorff.

``chamfer = ½ (mean_a min_b |a − b| + mean_b min_a |b − a|) / diag``: Euclidean (not squared)
nearest-neighbour distances averaged both ways, divided by the target's bounding-box diagonal,
so it is dimensionless (0 for identical surfaces; 0.01 = 1% of the target's size).
``hausdorff = max(max_a min_b |a − b|, max_b min_a |b − a|) / diag``: the largest deviation
either way. A local miss - a concavity filled in, a thin part lost - hardly moves the mean but
sets the maximum.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_surface(vertices: Tensor, faces: Tensor, num_points: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """(num_points, 3) points uniformly distributed over the mesh's area (faces chosen by area,
    uniform barycentric coordinates)."""
    tri = vertices[faces]  # (F, 3, 3)
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=1)
    if not torch.isfinite(area).all() or area.sum() <= 0:
        raise ValueError("mesh has no area (or non-finite vertices): cannot sample its surface")
    index = torch.multinomial(area, num_points, replacement=True, generator=generator)
    r1 = torch.rand(num_points, 1, generator=generator, device=vertices.device).sqrt()
    r2 = torch.rand(num_points, 1, generator=generator, device=vertices.device)
    t = tri[index]
    return (1 - r1) * t[:, 0] + r1 * (1 - r2) * t[:, 1] + r1 * r2 * t[:, 2]


def nearest_distances(a: Tensor, b: Tensor, chunk: int = 4096) -> Tensor:
    """(N,) distance from each point of ``a`` (N, 3) to its nearest point of ``b`` (M, 3),
    computed in chunks of ``chunk`` rows (memory ``chunk × M``)."""
    return torch.cat([torch.cdist(a[i:i + chunk], b).min(dim=1).values
                      for i in range(0, a.shape[0], chunk)])


def surface_distances(vertices: Tensor, faces: Tensor, target_vertices: Tensor,
                      target_faces: Tensor, num_points: int = 20000, seed: int = 0
                      ) -> dict[str, float]:
    """``{"chamfer", "hausdorff"}`` of a mesh to a target mesh (module docstring), from the
    same ``num_points`` samples on each surface."""
    g = torch.Generator(device=vertices.device).manual_seed(seed)
    with torch.no_grad():
        a = sample_surface(vertices.float(), faces, num_points, g)
        b = sample_surface(target_vertices.float(), target_faces, num_points, g)
        diagonal = (target_vertices.max(0).values - target_vertices.min(0).values).norm()
        ab, ba = nearest_distances(a, b), nearest_distances(b, a)
    return {"chamfer": float(0.5 * (ab.mean() + ba.mean()) / diagonal),
            "hausdorff": float(torch.maximum(ab.max(), ba.max()) / diagonal)}


def chamfer_distance(vertices: Tensor, faces: Tensor, target_vertices: Tensor,
                     target_faces: Tensor, num_points: int = 20000, seed: int = 0) -> float:
    """Normalized symmetric Chamfer distance of a mesh to a target mesh (module docstring)."""
    return surface_distances(vertices, faces, target_vertices, target_faces, num_points,
                             seed)["chamfer"]
