"""Pictures of a stimulus as an object: the whole mesh from around it, not only the fit's camera.

- :func:`framing_views`: cameras around a mesh's bounding sphere that frame all of it, each with
  a point light above and beside the camera (a key light, so relief shows), bright enough to
  light the object as the fit's light did;
- :func:`object_figure`: the model's own view beside three oblique views, each panel at least
  512 pixels, titled, with the plausibility measures in the figure's title;
- :func:`turntable`: 36 frames around the object at a fixed elevation, as an animated WebP
  (or GIF).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lit3d.data.views import Views, spherical_to_cartesian
from lit3d.render.base import Renderer

#: The oblique panels of :func:`object_figure`: (azimuth, elevation) in degrees.
OBLIQUE = ((-60.0, 35.0), (30.0, 35.0), (120.0, 15.0))


def bounding_sphere(vertices: Tensor) -> tuple[Tensor, float]:
    """``(centre (3,), radius)``: the bounding box's centre and the farthest vertex from it."""
    centre = (vertices.min(0).values + vertices.max(0).values) / 2
    return centre, float((vertices - centre).norm(dim=-1).max().clamp(min=1e-6))


def framing_views(vertices: Tensor, azimuth_deg: Sequence[float], elevation_deg: Sequence[float],
                  reference: Views, fov_deg: float = 30.0, margin: float = 1.08) -> Views:
    """Views of the whole mesh: cameras at the given angles around its bounding sphere (angles
    as :mod:`lit3d.data.views`), at the distance where the sphere fills ``fov_deg`` with
    ``margin``; up is world ``+z``. Each view's point light sits 25° above and 30° to the left
    of its camera at the same distance, with the intensity that gives the object the
    irradiance the ``reference`` view's light gave it."""
    centre, radius = bounding_sphere(vertices.detach().float().cpu())
    distance = margin * radius / math.sin(math.radians(fov_deg) / 2)
    az = torch.tensor([float(a) for a in azimuth_deg])
    el = torch.tensor([float(e) for e in elevation_deg])
    camera = centre + spherical_to_cartesian(az, el, distance).reshape(-1, 3)
    light = centre + spherical_to_cartesian(az - 30.0, (el + 25.0).clamp(max=89.0),
                                            distance).reshape(-1, 3)
    ref_distance = float((reference.light_position[0] - reference.camera_target[0]).norm())
    intensity = float(reference.light_intensity[0]) * (distance / ref_distance) ** 2
    b = camera.shape[0]
    up = torch.tensor([0.0, 0.0, 1.0]).repeat(b, 1)
    polar = (el.abs() > 89.9)[:, None]
    up = torch.where(polar, torch.tensor([0.0, 1.0, 0.0]), up)
    return Views(camera_position=camera, camera_target=centre.repeat(b, 1), camera_up=up,
                 fov_deg=torch.full((b,), float(fov_deg)), light_position=light,
                 light_intensity=torch.full((b,), intensity))


def _renderer_at(renderer: Renderer, size: int) -> Renderer:
    copy_ = copy.deepcopy(renderer)
    copy_.image_size = int(size)
    return copy_


@torch.no_grad()
def render_views(renderer: Renderer, vertices: Tensor, faces: Tensor, views: Views, size: int,
                 spp: int, colors: Tensor | None = None) -> Tensor:
    """(B, 3, size, size) linear renders of the mesh in ``views`` (one at a time)."""
    high = _renderer_at(renderer, size)
    device = vertices.device
    return torch.cat([high(vertices, faces, views[i].to(device), seed=i, spp=spp, colors=colors)
                      for i in range(len(views))]).cpu()


def object_figure(path: str | Path, renderer: Renderer, vertices: Tensor, faces: Tensor,
                  model_view: Views, title: str = "", size: int = 512, spp: int = 32,
                  colors: Tensor | None = None) -> Path:
    """Writes the figure: the fit's camera and light (rendered at ``size`` pixels) beside the
    :data:`OBLIQUE` views of :func:`framing_views`, each panel ``size`` pixels wide."""
    from lit3d.figures import pyplot, save_figure
    from lit3d.render.tonemap import srgb_encode

    plt = pyplot()
    views = Views.cat([model_view[:1].to("cpu"),
                       framing_views(vertices, [a for a, _ in OBLIQUE], [e for _, e in OBLIQUE],
                                     model_view.to("cpu"))])
    images = srgb_encode(render_views(renderer, vertices, faces, views, size, spp, colors))
    titles = ["the model's view (its camera and light)"] + [
        f"whole object, azimuth {a:g}°, elevation {e:g}°" for a, e in OBLIQUE]
    dpi = 100
    fig, axes = plt.subplots(1, len(titles), figsize=(len(titles) * size / dpi,
                                                      size / dpi + 0.9), dpi=dpi)
    for ax, image, label in zip(axes, images, titles):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(label, fontsize=11)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=13)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - 0.9 / (size / dpi + 0.9), wspace=0)
    return save_figure(fig, path, dpi=dpi)


def turntable(path: str | Path, renderer: Renderer, vertices: Tensor, faces: Tensor,
              model_view: Views, frames: int = 36, elevation_deg: float = 30.0, size: int = 320,
              spp: int = 16, colors: Tensor | None = None, frame_ms: int = 100) -> Path:
    """Writes ``frames`` views around the object (azimuth in steps of 360°/frames, fixed
    elevation, the framing of :func:`framing_views`) as an animated image that loops; the
    suffix picks the format (``.webp`` or ``.gif``)."""
    from PIL import Image

    from lit3d.render.tonemap import srgb_encode

    azimuths = [360.0 * k / frames for k in range(frames)]
    views = framing_views(vertices, azimuths, [elevation_deg] * frames, model_view.to("cpu"))
    images = srgb_encode(render_views(renderer, vertices, faces, views, size, spp, colors))
    pictures = [Image.fromarray((im.nan_to_num(0.0).permute(1, 2, 0).numpy() * 255 + 0.5)
                                .astype("uint8")) for im in images]
    path = Path(path)
    options = {"lossless": False, "quality": 85} if path.suffix == ".webp" else {}
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0,
                     **options)
    return path
