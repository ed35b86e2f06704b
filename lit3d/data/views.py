"""Views: camera pose + point-light position, the unit of data every renderer consumes.

World convention (3D-MEI paper, Fig. 3D): right-handed, ``+z`` up; the object sits at the origin;
the overhead camera is at ``(0, 0, d)`` looking down with image-up ``+y``, so world ``+x`` is image
right and ``+y`` image up. Angles are in degrees: azimuth from ``+x`` towards ``+y``, elevation
from the ``z = 0`` plane towards ``+z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class Views:
    """A batch of B views. All tensors share device and dtype (float32).

    Attributes:
        camera_position: (B, 3) camera centre, world units.
        camera_target: (B, 3) point the camera looks at.
        camera_up: (B, 3) up direction of the image.
        fov_deg: (B,) full field of view of the (square) image, degrees.
        light_position: (B, 3) point-light position, world units.
        light_intensity: (B,) point-light radiant intensity, W/sr (Mitsuba ``point`` units).
    """

    camera_position: Tensor
    camera_target: Tensor
    camera_up: Tensor
    fov_deg: Tensor
    light_position: Tensor
    light_intensity: Tensor

    def __len__(self) -> int:
        return int(self.camera_position.shape[0])

    def __getitem__(self, index) -> "Views":
        """Sub-batch; an integer index keeps a batch dimension of 1."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Views(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, *args, **kwargs) -> "Views":
        return Views(**{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})

    def replace(self, **changes: Tensor) -> "Views":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Views(**values)

    @staticmethod
    def cat(views: list["Views"]) -> "Views":
        """Concatenates batches (also the ``collate_fn`` of the view datasets)."""
        return Views(
            **{f.name: torch.cat([getattr(v, f.name) for v in views]) for f in fields(Views)}
        )

    def as_dicts(self) -> list[dict[str, list[float] | float]]:
        """Plain-Python description of each view (for JSON sidecars and renderer back-ends)."""
        out = []
        for b in range(len(self)):
            out.append(
                {
                    f.name: getattr(self, f.name)[b].detach().cpu().tolist()
                    for f in fields(self)
                }
            )
        return out


def spherical_to_cartesian(
    azimuth_deg: Tensor | float, elevation_deg: Tensor | float, radius: Tensor | float = 1.0
) -> Tensor:
    """Point on a sphere around the origin, (..., 3); see the module docstring for the angles."""
    az = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float32))
    el = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float32))
    r = torch.as_tensor(radius, dtype=torch.float32)
    return torch.stack(
        torch.broadcast_tensors(
            r * torch.cos(el) * torch.cos(az), r * torch.cos(el) * torch.sin(az), r * torch.sin(el)
        ),
        dim=-1,
    )


def overhead_views(
    num_views: int = 1,
    camera_distance: float = 10.0,
    fov_deg: float = 14.0,
    light_azimuth_deg: float = 45.0,
    light_elevation_deg: float = 75.0,
    light_distance: float = 10.0,
    light_intensity: float = 156.25,
) -> Views:
    """The 3D-MEI scene: camera at ``(0, 0, camera_distance)`` looking at the origin (image-up
    ``+y``) and a point light near the camera on the dome of radius ``light_distance``.
    """
    if camera_distance <= 0 or light_distance <= 0:
        raise ValueError("camera_distance and light_distance must be > 0")
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    n = num_views
    light = spherical_to_cartesian(light_azimuth_deg, light_elevation_deg, light_distance)
    return Views(
        camera_position=torch.tensor([[0.0, 0.0, camera_distance]]).repeat(n, 1),
        camera_target=torch.zeros(n, 3),
        camera_up=torch.tensor([[0.0, 1.0, 0.0]]).repeat(n, 1),
        fov_deg=torch.full((n,), float(fov_deg)),
        light_position=light.reshape(1, 3).repeat(n, 1),
        light_intensity=torch.full((n,), float(light_intensity)),
    )


def orbit_views(
    azimuth_deg: Tensor | float,
    elevation_deg: Tensor | float,
    distance: float = 4.0,
    fov_deg: float = 14.0,
    light_intensity: float = 156.25,
) -> Views:
    """Cameras on a sphere of radius ``distance`` looking at the origin, each with the point light
    at the camera. Up is world ``+z``, or ``+y`` for cameras within 1e-3 of the poles.
    Angles broadcast to a batch of B views."""
    position = spherical_to_cartesian(azimuth_deg, elevation_deg, distance).reshape(-1, 3)
    return cameras_at(position, fov_deg, light_intensity)


def cameras_at(position: Tensor, fov_deg: float, light_intensity: float) -> Views:
    """Views from (B, 3) camera ``position``s looking at the origin, the point light at each
    camera with ``light_intensity`` (W/sr). Up is world ``+z``, or ``+y`` for cameras within
    1e-3 of the ``z`` axis (relative to their distance)."""
    b = position.shape[0]
    polar = position[:, :2].norm(dim=-1) < 1e-3 * position.norm(dim=-1)
    up = torch.where(polar[:, None], torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    return Views(
        camera_position=position,
        camera_target=torch.zeros(b, 3),
        camera_up=up,
        fov_deg=torch.full((b,), float(fov_deg)),
        light_position=position.clone(),
        light_intensity=torch.full((b,), float(light_intensity)),
    )


def fibonacci_directions(num: int) -> Tensor:
    """(num, 3) unit vectors on the Fibonacci lattice (golden-angle spiral), evenly spread over
    the sphere: ``z_i = 1 − (2i + 1)/num``, azimuth ``i·π(3 − √5)``."""
    if num < 1:
        raise ValueError(f"need at least one direction, got {num}")
    i = torch.arange(num, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / num
    r = torch.sqrt((1 - z * z).clamp(min=0))
    phi = (i - 0.5) * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1).float()


def fibonacci_views(num_views: int = 25, distance: float = 4.0, fov_deg: float = 40.0) -> Views:
    """MRD's cameras: ``num_views`` cameras on the Fibonacci lattice of a sphere of radius
    ``distance`` (world units) around the origin, looking at it (up ``+z``, ``+y`` near the
    poles). The object is lit by the environment only: the point light is off (intensity 0)."""
    if distance <= 0 or not 0 < fov_deg < 180:
        raise ValueError(f"need distance > 0 and fov_deg in (0, 180), got {distance}, {fov_deg}")
    return cameras_at(distance * fibonacci_directions(num_views), fov_deg, light_intensity=0.0)


def turntable_views(num_views: int = 4, elevation_deg: float = 20.0, distance: float = 5.0,
                    fov_deg: float = 40.0, first_azimuth_deg: float = -90.0) -> Views:
    """MRD's material cameras: ``num_views`` cameras evenly spaced in azimuth around the object
    at ``elevation_deg`` above the floor's plane, ``distance`` from the origin, looking at it
    (up ``+z``). With 4 views: front (camera on ``−y``, the default first azimuth), the right
    side, back and left side. Lit by the environment only (point light off)."""
    if num_views < 1:
        raise ValueError(f"need at least one view, got {num_views}")
    if distance <= 0 or not 0 < fov_deg < 180 or not -90 < elevation_deg < 90:
        raise ValueError("need distance > 0, fov_deg in (0, 180), elevation_deg in (-90, 90); got "
                         f"{distance}, {fov_deg}, {elevation_deg}")
    azimuth = first_azimuth_deg + 360.0 * torch.arange(num_views, dtype=torch.float32) / num_views
    position = spherical_to_cartesian(azimuth, elevation_deg, distance).reshape(-1, 3)
    return cameras_at(position, fov_deg, light_intensity=0.0)


def rotate_about_axis(points: Tensor, axis: Tensor, angle: Tensor) -> Tensor:
    """Rodrigues rotation of (B, 3) ``points`` about unit (B, 3) ``axis`` by (B,) ``angle`` rad."""
    axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    cross = torch.linalg.cross(axis, points, dim=-1)
    dot = (axis * points).sum(-1, keepdim=True)
    return points * cos + cross * sin + axis * dot * (1 - cos)


def jitter_directions(
    positions: Tensor, center: Tensor, std_deg: float, generator: torch.Generator
) -> Tensor:
    """Rotates each (B, 3) position about ``center`` (B, 3) by a random angle ~ |N(0, std_deg)|
    about a random axis perpendicular to its direction: same distance, tilted direction."""
    if std_deg <= 0:
        return positions
    rel = positions - center
    b = rel.shape[0]
    random = torch.randn(b, 3, generator=generator).to(rel)
    axis = torch.linalg.cross(rel, random, dim=-1)
    angle = (torch.randn(b, generator=generator).abs() * math.radians(std_deg)).to(rel)
    return center + rotate_about_axis(rel, axis, angle)
