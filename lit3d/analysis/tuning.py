"""Pose and light tuning sweeps of a fitted 3D stimulus (3D-MEI paper, Fig. 2).

Pose: the object is rotated, with everything else fixed, by ``R = R_x(elevation) · R_z(azimuth)``
about the origin: azimuth turns it about the world ``z`` axis (a turntable; for the overhead
camera this is an in-plane rotation of the image, counter-clockwise as seen from the camera),
elevation then tilts it about the world ``x`` axis (towards the camera's image-down side for
positive angles). ``(0, 0)`` is the fitted pose.

Light: the point light moves over the forward-facing hemisphere of the camera — azimuth × elevation
on the dome of the view's light distance (elevation 90° = at the camera's direction, 0° = grazing),
everything else fixed.

Every sweep is rendered in batches (one renderer call and one response-model call per ``chunk``
views), not one call per grid point. Results are tables (:class:`Sweep`) that write a CSV, a
heatmap (pose) or polar heatmap (light), and a contact sheet of renders grouped into high, mid
and low responses.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from lit3d.console import progress
from lit3d.data.views import Views, spherical_to_cartesian
from lit3d.errors import InputError
from lit3d.figures import pyplot, save_figure
from lit3d.render.base import Renderer

#: (B, 3, H, W) renders -> (B,) responses of one unit.
ResponseFn = Callable[[Tensor], Tensor]


def pose_rotations(azimuth_deg: Tensor, elevation_deg: Tensor) -> Tensor:
    """(B, 3, 3) rotations ``R_x(elevation) · R_z(azimuth)`` for (B,) angles in degrees
    (see the module docstring)."""
    az, el = torch.deg2rad(azimuth_deg.float()), torch.deg2rad(elevation_deg.float())
    ca, sa, ce, se = torch.cos(az), torch.sin(az), torch.cos(el), torch.sin(el)
    zero, one = torch.zeros_like(az), torch.ones_like(az)
    rz = torch.stack([ca, -sa, zero, sa, ca, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, ce, -se, zero, se, ce], -1).reshape(-1, 3, 3)
    return rx @ rz


def grid(azimuths_deg: Tensor, elevations_deg: Tensor) -> tuple[Tensor, Tensor]:
    """Flattened (A·E,) azimuth and elevation of the grid, azimuth fastest."""
    el, az = torch.meshgrid(torch.as_tensor(elevations_deg, dtype=torch.float32),
                            torch.as_tensor(azimuths_deg, dtype=torch.float32), indexing="ij")
    return az.reshape(-1), el.reshape(-1)


@dataclass
class Sweep:
    """Responses over an azimuth × elevation grid.

    Attributes:
        kind: ``"pose"`` or ``"light"``.
        azimuths_deg: (A,) grid azimuths; elevations_deg: (E,) grid elevations.
        responses: (E, A) response at each grid point.
        images: (E·A, 3, H, W) linear renders (azimuth fastest), or ``None``.
    """

    kind: str
    azimuths_deg: Tensor
    elevations_deg: Tensor
    responses: Tensor
    images: Tensor | None = None

    def peak(self) -> tuple[float, float, float]:
        """(azimuth, elevation, response) of the largest response."""
        e, a = divmod(int(self.responses.argmax()), self.responses.shape[1])
        return (float(self.azimuths_deg[a]), float(self.elevations_deg[e]),
                float(self.responses[e, a]))

    def rows(self) -> list[dict[str, float]]:
        az, el = grid(self.azimuths_deg, self.elevations_deg)
        return [{"azimuth_deg": float(a), "elevation_deg": float(e), "response": float(r)}
                for a, e, r in zip(az, el, self.responses.reshape(-1))]

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["azimuth_deg", "elevation_deg", "response"])
            writer.writeheader()
            writer.writerows(self.rows())
        return path

    def plot(self, path: str | Path) -> Path:
        """Heatmap PNG (pose: azimuth × elevation) or polar heatmap PNG (light: angle =
        azimuth, radius = 90° − elevation, so the centre is the camera's direction)."""
        import numpy as np

        plt = pyplot()
        az, el, r = self.azimuths_deg.numpy(), self.elevations_deg.numpy(), self.responses.numpy()
        if self.kind == "pose":
            fig, ax = plt.subplots(figsize=(5.5, 4.2))
            mesh = ax.pcolormesh(az, el, r, shading="nearest", cmap="viridis")
            ax.set_xlabel("object azimuth (deg, about the camera's axis)")
            ax.set_ylabel("object elevation (deg)")
            ax.set_title("Pose tuning")
        else:
            fig, ax = plt.subplots(figsize=(6, 5.6), subplot_kw={"projection": "polar"})
            mesh = ax.pcolormesh(np.radians(az), 90.0 - el, r, shading="nearest",
                                 cmap="viridis")
            ax.set_rlabel_position(100)
            ax.set_xlabel("light azimuth (deg)")
            ax.set_ylabel("90° − light elevation (deg)", labelpad=28)
            ax.set_title("Light-direction tuning\n(centre: light from the camera)", pad=14)
        fig.colorbar(mesh, ax=ax, label="response", pad=0.12 if self.kind == "light" else 0.04)
        fig.tight_layout()
        return save_figure(fig, path)

    def contact_sheet(self, path: str | Path, per_group: int = 4, upscale: int = 2) -> Path:
        """PNG of renders in three rows: the ``per_group`` highest, middle and lowest
        responses (as Fig. 2B), each titled with its azimuth/elevation and response."""
        from lit3d.render.tonemap import srgb_encode

        if self.images is None:
            raise ValueError("this sweep kept no images (keep_images=False)")
        plt = pyplot()
        order = self.distinct().argsort(descending=True)
        ranked = self.distinct_index()[order]
        n = min(per_group, len(ranked))
        middle = len(ranked) // 2 - n // 2
        groups = {"high": ranked[:n], "mid": ranked[middle:middle + n], "low": ranked[-n:]}
        az, el = grid(self.azimuths_deg, self.elevations_deg)
        what = "object" if self.kind == "pose" else "light"
        fig, axes = plt.subplots(3, n, figsize=(2.3 * n, 7.6), squeeze=False)
        for row, (label, idx) in enumerate(groups.items()):
            for col, i in enumerate(idx.tolist()):
                ax = axes[row][col]
                ax.imshow(srgb_encode(self.images[i]).permute(1, 2, 0).numpy())
                ax.set_title(f"{label}: az {az[i]:.0f}°, el {el[i]:.0f}°\n"
                             f"response {float(self.responses.reshape(-1)[i]):.3g}", fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row][0].set_ylabel(f"{label} responses")
        fig.suptitle(f"{what.capitalize()}-direction sweep: highest, middle and lowest responses "
                     f"({what} azimuth and elevation)", fontsize=9)
        fig.tight_layout()
        return save_figure(fig, path, dpi=50 * upscale)

    def distinct_index(self) -> Tensor:
        """Indices (into the flattened grid) of distinct stimuli: grid points that give the
        same scene as an earlier one (a light at 90° elevation is the same for every
        azimuth) are left out."""
        az, el = grid(self.azimuths_deg, self.elevations_deg)
        keep, seen = [], set()
        for i, (a, e) in enumerate(zip(az.tolist(), el.tolist())):
            key = (0.0 if self.kind == "light" and abs(e - 90.0) < 1e-6 else round(a % 360, 6),
                   round(e, 6))
            if key not in seen:
                seen.add(key)
                keep.append(i)
        return torch.tensor(keep, dtype=torch.long)

    def distinct(self) -> Tensor:
        """Responses of :meth:`distinct_index`'s stimuli."""
        return self.responses.reshape(-1)[self.distinct_index()]


@torch.no_grad()
def _respond(renderer: Renderer, response: ResponseFn, vertices: Tensor, faces: Tensor,
             views: Views, seed: int, spp: int | None, chunk: int, keep_images: bool
             ) -> tuple[Tensor, Tensor | None]:
    responses, images = [], []
    for start in progress(range(0, len(views), chunk), f"rendering {len(views)} views"):
        part = views[start:start + chunk]
        meshes = vertices[start:start + chunk] if vertices.ndim == 3 else vertices
        rendered = renderer(meshes, faces, part, seed=seed + start, spp=spp)
        responses.append(response(rendered).reshape(-1).cpu())
        if keep_images:
            images.append(rendered.cpu())
    return torch.cat(responses), (torch.cat(images) if keep_images else None)


def pose_sweep(renderer: Renderer, response: ResponseFn, vertices: Tensor, faces: Tensor,
               view: Views, azimuths_deg: Tensor, elevations_deg: Tensor, seed: int = 0,
               spp: int | None = None, chunk: int = 16, keep_images: bool = True) -> Sweep:
    """Responses to the mesh (V, 3) rotated over the grid (module docstring), seen in ``view``
    (one view), rendered ``chunk`` poses per renderer call."""
    if len(view) != 1:
        raise InputError(f"a sweep takes one base view, got {len(view)}")
    az, el = grid(azimuths_deg, elevations_deg)
    rotated = vertices[None].float() @ pose_rotations(az, el).to(vertices).transpose(1, 2)
    views = Views.cat([view] * len(az))
    responses, images = _respond(renderer, response, rotated, faces, views, seed, spp, chunk,
                                 keep_images)
    return Sweep("pose", torch.as_tensor(azimuths_deg).float(),
                 torch.as_tensor(elevations_deg).float(),
                 responses.reshape(len(elevations_deg), len(azimuths_deg)), images)


def light_directions(view: Views, azimuths_deg: Tensor, elevations_deg: Tensor) -> Tensor:
    """(A·E, 3) light positions of the azimuth × elevation grid (azimuth fastest) on the
    forward-facing hemisphere of ``view``'s camera (:func:`hemisphere_positions`)."""
    return hemisphere_positions(view, *grid(azimuths_deg, elevations_deg))


def check_light_elevations(elevation_deg) -> None:
    """Raises ``ValueError`` unless every light elevation lies in (0°, 90°] (the camera's
    forward-facing hemisphere)."""
    elevation_deg = torch.as_tensor(elevation_deg, dtype=torch.float32)
    if ((elevation_deg <= 0) | (elevation_deg > 90)).any():
        raise InputError("light elevations must lie in (0, 90]: the forward-facing hemisphere")


def hemisphere_positions(view: Views, azimuth_deg: Tensor, elevation_deg: Tensor) -> Tensor:
    """(N, 3) light positions for (N,) paired angles on the forward-facing hemisphere of
    ``view``'s camera, at the view's light distance from its target: elevation measured from
    the plane perpendicular to the viewing direction (90° = along it, towards the camera),
    azimuth about it from the camera's right-hand side towards its up direction. Raises
    ``ValueError`` for an elevation outside (0°, 90°]."""
    check_light_elevations(elevation_deg)
    forward = (view.camera_position - view.camera_target)[0]
    forward = forward / forward.norm()
    up = view.camera_up[0] - (view.camera_up[0] @ forward) * forward
    up = up / up.norm()
    right = torch.linalg.cross(up, forward)
    local = spherical_to_cartesian(azimuth_deg, elevation_deg).reshape(-1, 3)  # right, up, fwd
    distance = (view.light_position - view.camera_target)[0].norm()
    return view.camera_target[0] + distance * (local @ torch.stack([right, up, forward]))


def light_angles(view: Views) -> tuple[float, float]:
    """``(azimuth, elevation)`` in degrees of view 0's light on its camera's hemisphere: the
    inverse of :func:`hemisphere_positions` (azimuth in [0, 360))."""
    forward = (view.camera_position - view.camera_target)[0]
    forward = forward / forward.norm()
    up = view.camera_up[0] - (view.camera_up[0] @ forward) * forward
    up = up / up.norm()
    right = torch.linalg.cross(up, forward)
    light = (view.light_position - view.camera_target)[0]
    light = light / light.norm()
    elevation = torch.rad2deg(torch.asin((light @ forward).clamp(-1, 1)))
    azimuth = torch.rad2deg(torch.atan2(light @ up, light @ right)) % 360
    return float(azimuth), float(elevation)


def light_sweep(renderer: Renderer, response: ResponseFn, vertices: Tensor, faces: Tensor,
                view: Views, azimuths_deg: Tensor, elevations_deg: Tensor, seed: int = 0,
                spp: int | None = None, chunk: int = 16, keep_images: bool = True) -> Sweep:
    """Responses to the mesh with the point light moved over the camera's forward-facing
    hemisphere (:func:`light_directions`), everything else as in ``view``."""
    if len(view) != 1:
        raise InputError(f"a sweep takes one base view, got {len(view)}")
    positions = light_directions(view, azimuths_deg, elevations_deg)
    views = Views.cat([view] * len(positions)).replace(light_position=positions.to(
        view.light_position))
    responses, images = _respond(renderer, response, vertices, faces, views, seed, spp, chunk,
                                 keep_images)
    return Sweep("light", torch.as_tensor(azimuths_deg).float(),
                 torch.as_tensor(elevations_deg).float(),
                 responses.reshape(len(elevations_deg), len(azimuths_deg)), images)
