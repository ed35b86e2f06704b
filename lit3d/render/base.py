"""The renderer interface every back-end implements.

``renderer(vertices, faces, views, seed=...) -> images`` with

- ``vertices``: (V, 3) one mesh seen in every view, or (B, V, 3) one mesh per view (world units),
- ``faces``: (F, 3) long, shared,
- ``views``: :class:`~lit3d.data.views.Views` of batch size B,
- ``images``: (B, 3, H, W) linear RGB radiance, channels first, ``H = W = image_size``,
  differentiable with respect to ``vertices``;
- ``colors`` (optional): (V, 3) or (B, V, 3) per-vertex diffuse reflectance in [0, 1] (linear
  RGB) replacing the uniform ``albedo``, differentiable too (3D-MEI's colour extension);
- ``seed``: the sampling noise of stochastic back-ends: an int (view ``b`` of the batch gets
  a seed derived from it and ``b``), or one seed per view (a sequence or (B,) tensor), so that
  a view's noise need not depend on its place in the batch (:func:`view_seeds`).

Scene conventions shared by all back-ends (so their images agree): a diffuse grey object of albedo
``albedo`` lit by the views' point light (radiant intensity ``I`` in W/sr, inverse-square
fall-off, so a surface facing the light at distance ``r`` has radiance ``albedo·I·cosθ/(π r²)``)
in front of a uniform grey background of radiance ``background`` that also lights the object
(for an unoccluded surface this adds ``albedo·background``, i.e. an ambient term).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from torch import Tensor

from lit3d.data.views import Views

Seed = int | Sequence[int] | Tensor


def view_seeds(seed: Seed, count: int) -> list[int]:
    """The 32-bit render seed of each of ``count`` views: ``(seed·1000003 + b) mod 2³²`` for an
    int ``seed``, else the given per-view seeds (mod 2³²)."""
    if isinstance(seed, Tensor):
        seed = seed.reshape(-1).tolist() if seed.ndim else int(seed)
    if isinstance(seed, int):
        return [(seed * 1_000_003 + b) % (2**32) for b in range(count)]
    seeds = [int(s) % (2**32) for s in seed]
    if len(seeds) != count:
        raise ValueError(f"got {len(seeds)} seeds for {count} views")
    return seeds


class Renderer(abc.ABC):
    """Base class of differentiable mesh renderers (see the module docstring for the contract).

    Args:
        image_size: output height and width in pixels (square images).
        albedo: diffuse reflectance of the object, in [0, 1].
        background: radiance of the uniform grey background (also an ambient light).
    """

    def __init__(self, image_size: int = 64, albedo: float = 0.8, background: float = 0.3):
        if int(image_size) < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
        if not 0.0 <= albedo <= 1.0:
            raise ValueError(f"albedo must be in [0, 1], got {albedo}")
        if background < 0:
            raise ValueError(f"background radiance must be >= 0, got {background}")
        self.image_size = int(image_size)
        self.albedo = float(albedo)
        self.background = float(background)

    @abc.abstractmethod
    def render(
        self, vertices: Tensor, faces: Tensor, views: Views, seed: Seed = 0, spp: int | None = None,
        colors: Tensor | None = None,
    ) -> Tensor:
        """Renders (B, 3, H, W) images; ``seed`` selects the sampling noise, ``spp`` overrides
        the samples per pixel of stochastic back-ends, ``colors`` the per-vertex albedo."""

    def __call__(self, vertices: Tensor, faces: Tensor, views: Views, seed: Seed = 0,
                 spp: int | None = None, colors: Tensor | None = None) -> Tensor:
        if vertices.ndim not in (2, 3) or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (V, 3) or (B, V, 3), got {tuple(vertices.shape)}")
        if vertices.ndim == 3 and vertices.shape[0] != len(views):
            raise ValueError(
                f"got {vertices.shape[0]} meshes for {len(views)} views; pass one mesh (V, 3) "
                "or one per view (B, V, 3)"
            )
        if colors is not None and (colors.shape[-2:] != vertices.shape[-2:]
                                   or colors.ndim not in (2, 3)):
            raise ValueError(f"colors must be (V, 3) or (B, V, 3) like the vertices "
                             f"{tuple(vertices.shape)}, got {tuple(colors.shape)}")
        if colors is None:
            return self.render(vertices, faces, views, seed=seed, spp=spp)
        return self.render(vertices, faces, views, seed=seed, spp=spp, colors=colors)
