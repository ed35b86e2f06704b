"""The renderer's vertex gradient of a loss against central finite differences.

Differentiable renderers are easy to get wrong at silhouettes (an integrator without a boundary
term differentiates shading only). :func:`gradient_check` compares, for a few smooth random
displacement fields ``d_k`` along the vertex normals, the directional derivative the renderer's
gradient gives (``<grad L, d_k>``) with the central difference
``(L(v + eps d_k) - L(v - eps d_k)) / (2 eps)`` rendered with the same seed, separately for the
vertices on the silhouette of some view and for those facing a camera (interior), each only
where in view. The agreement is the cosine between the K analytic and the K numeric values and
their relative error ``|a - n| / |n|``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.geometry.topology import vertex_normals
from lit3d.metrics.plausibility import in_view

#: ``loss(vertices (V, 3), seed, spp) -> scalar``: renders the vertices and scores the renders.
VertexLoss = Callable[[Tensor, int, int], Tensor]


@dataclass
class GroupCheck:
    """The comparison for one group of vertices.

    Attributes:
        count: vertices in the group.
        analytic: (K,) directional derivatives from the renderer's gradient.
        numeric: (K,) central differences along the same directions.
    """

    count: int
    analytic: Tensor
    numeric: Tensor

    @property
    def cosine(self) -> float:
        """Cosine between ``analytic`` and ``numeric`` (1: the same derivatives up to scale)."""
        return float(torch.nn.functional.cosine_similarity(self.analytic, self.numeric, dim=0))

    @property
    def relative_error(self) -> float:
        """``|analytic - numeric| / |numeric|``."""
        return float((self.analytic - self.numeric).norm() / self.numeric.norm().clamp(min=1e-30))


def vertex_groups(vertices: Tensor, faces: Tensor, views: Views,
                  silhouette_cos: float = 0.3) -> dict[str, Tensor]:
    """``{"silhouette": (V,) bool, "interior": (V,) bool}``: vertices in view of some camera
    whose normal is nearly perpendicular to the line of sight of one of them
    (``|cos| < silhouette_cos``), and the other vertices in view of some camera."""
    normals = vertex_normals(vertices, faces)
    silhouette = torch.zeros(vertices.shape[0], dtype=torch.bool)
    seen = torch.zeros_like(silhouette)
    for b in range(len(views)):
        view = views[b:b + 1]
        visible = in_view(vertices, view)
        sight = torch.nn.functional.normalize(view.camera_position[0].to(vertices) - vertices,
                                              dim=-1)
        grazing = (normals * sight).sum(-1).abs() < silhouette_cos
        silhouette |= visible & grazing
        seen |= visible
    return {"silhouette": silhouette, "interior": seen & ~silhouette}


def smooth_directions(vertices: Tensor, faces: Tensor, mask: Tensor, count: int,
                      generator: torch.Generator) -> Tensor:
    """(count, V, 3) displacement fields along the vertex normals, zero outside ``mask``: each a
    random sum of four Gaussian bumps (width a quarter of the mesh's diagonal) centred on
    vertices of the mask, scaled to a largest displacement of 1."""
    normals = vertex_normals(vertices, faces)
    candidates = torch.nonzero(mask).flatten()
    width = 0.25 * float((vertices.max(0).values - vertices.min(0).values).norm())
    fields = []
    for _ in range(count):
        centres = vertices[candidates[torch.randint(len(candidates), (4,), generator=generator)]]
        weights = torch.randn(4, generator=generator, dtype=vertices.dtype)
        bumps = torch.exp(-torch.cdist(vertices, centres) ** 2 / (2 * width**2))  # (V, 4)
        field = (bumps @ weights) * mask.to(vertices.dtype)
        field = field / field.abs().max().clamp(min=1e-12)
        fields.append(normals * field[:, None])
    return torch.stack(fields)


def gradient_check(loss: VertexLoss, vertices: Tensor, faces: Tensor, views: Views,
                   directions: int = 6, eps: float = 0.01, spp: int = 64, seed: int = 0,
                   silhouette_cos: float = 0.3) -> dict[str, GroupCheck]:
    """Compares the renderer's gradient of ``loss`` with central differences (module docstring).

    Args:
        loss: the loss of renders of the vertices (:data:`VertexLoss`).
        vertices: (V, 3) the mesh where the gradient is checked, world units.
        faces: (F, 3) its faces.
        views: the views ``loss`` renders (they decide silhouette and interior).
        directions: displacement fields per group (K).
        eps: largest vertex displacement of the central differences, world units.
        spp: samples per pixel of every render.
        seed: the render seed (the same for the gradient and both differences).
        silhouette_cos: see :func:`vertex_groups`.

    Returns:
        ``{group: GroupCheck}`` for the groups with vertices in view.
    """
    vertices = vertices.detach().float()
    tracked = vertices.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss(tracked, seed, spp), tracked)
    generator = torch.Generator().manual_seed(seed)
    results = {}
    for name, mask in vertex_groups(vertices, faces, views, silhouette_cos).items():
        if not mask.any():
            continue
        fields = smooth_directions(vertices, faces, mask, directions, generator)
        analytic = (fields * gradient).sum(dim=(1, 2)).double()
        with torch.no_grad():
            numeric = torch.stack([
                (loss(vertices + eps * d, seed, spp).double()
                 - loss(vertices - eps * d, seed, spp).double()) / (2 * eps) for d in fields])
        results[name] = GroupCheck(int(mask.sum()), analytic, numeric)
    return results
