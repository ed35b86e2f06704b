"""Environment lighting for MRD scenes: procedural skies (no download) or an HDR/EXR file.

An environment is radiance as a function of world direction (``+z`` up). It is handed to
Mitsuba as a latitude-longitude image (H × 2H, linear RGB) in Mitsuba's ``envmap``
parameterization, whose local ``+y`` (the image's top row) the renderer rotates onto world ``+z``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

RGB = float | Sequence[float]


def _rgb(value: RGB) -> np.ndarray:
    array = np.broadcast_to(np.asarray(value, dtype=np.float32), (3,)).copy()
    if (array < 0).any() or not np.isfinite(array).all():
        raise ValueError(f"radiance must be finite and >= 0, got {value}")
    return array


def latlong_directions(height: int) -> np.ndarray:
    """(H, 2H, 3) world directions of the pixel centres of a lat-long map (top row = +z).

    Mitsuba's envmap maps local direction ``l`` to ``u = atan2(l_x, −l_z)/2π``,
    ``v = acos(l_y)/π``; the renderer's ``to_world`` rotates local ``+y`` to world ``+z``
    (``world = (l_x, −l_z, l_y)``).
    """
    if height < 2:
        raise ValueError(f"height must be >= 2, got {height}")
    theta = (np.arange(height) + 0.5) / height * math.pi
    phi = (np.arange(2 * height) + 0.5) / (2 * height) * 2 * math.pi
    theta, phi = np.meshgrid(theta, phi, indexing="ij")
    lx, ly, lz = np.sin(phi) * np.sin(theta), np.cos(theta), -np.cos(phi) * np.sin(theta)
    return np.stack([lx, -lz, ly], axis=-1).astype(np.float32)


class Environment:
    """Base class: ``radiance(directions (..., 3)) -> (..., 3)`` and :meth:`image`."""

    def radiance(self, directions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def image(self, height: int = 128) -> np.ndarray:
        """(H, 2H, 3) float32 lat-long radiance map (see :func:`latlong_directions`)."""
        return np.ascontiguousarray(self.radiance(latlong_directions(height)), dtype=np.float32)


class ConstantEnvironment(Environment):
    """The same radiance from every direction."""

    def __init__(self, radiance: RGB = 1.0):
        self.value = _rgb(radiance)

    def radiance(self, directions: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.value, directions.shape).copy()


class SkyGradient(Environment):
    """A sky brightening from the horizon to the zenith over a uniform ground.

    Above the horizon ``horizon + (zenith − horizon)·sin(elevation)^exponent``; below it
    ``ground``. Radiances are linear RGB.
    """

    def __init__(self, zenith: RGB = (0.35, 0.5, 0.9), horizon: RGB = (0.9, 0.9, 0.95),
                 ground: RGB = (0.25, 0.22, 0.2), exponent: float = 0.5):
        self.zenith, self.horizon, self.ground = _rgb(zenith), _rgb(horizon), _rgb(ground)
        if exponent <= 0:
            raise ValueError(f"exponent must be > 0, got {exponent}")
        self.exponent = float(exponent)

    def radiance(self, directions: np.ndarray) -> np.ndarray:
        up = np.clip(directions[..., 2:3], -1, 1)
        t = np.clip(up, 0, 1) ** self.exponent
        sky = self.horizon + (self.zenith - self.horizon) * t
        return np.where(up > 0, sky, self.ground).astype(np.float32)


class SunSky(SkyGradient):
    """:class:`SkyGradient` plus a sun: a disc of angular radius ``sun_radius_deg`` at
    (``sun_azimuth_deg``, ``sun_elevation_deg``) with radiance ``sun_radiance``. It casts
    shadows and shading gradients a uniform sky does not."""

    def __init__(self, sun_azimuth_deg: float = 45.0, sun_elevation_deg: float = 45.0,
                 sun_radius_deg: float = 4.0, sun_radiance: RGB = 30.0, **sky):
        super().__init__(**sky)
        if not 0 < sun_radius_deg < 90:
            raise ValueError(f"sun_radius_deg must be in (0, 90), got {sun_radius_deg}")
        az, el = math.radians(sun_azimuth_deg), math.radians(sun_elevation_deg)
        self.sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                             math.sin(el)], dtype=np.float32)
        self.cos_radius = math.cos(math.radians(sun_radius_deg))
        self.sun_radiance = _rgb(sun_radiance)

    def radiance(self, directions: np.ndarray) -> np.ndarray:
        sky = super().radiance(directions)
        inside = (directions @ self.sun)[..., None] >= self.cos_radius
        return np.where(inside, self.sun_radiance, sky).astype(np.float32)


class EnvironmentMap(Environment):
    """An HDR/EXR (or any format Mitsuba reads) lat-long map, ``+y`` up as HDRIs are stored,
    scaled by ``scale``.

    Args:
        path: the map's file, or an ``http(s)://``/``file://`` URL fetched on first use into the
            cache (see :func:`lit3d.assets.fetch_asset`).
        scale: radiance multiplier (>= 0).
        sha256: checksum of the file (or archive) at ``path``; logged when a URL has none.
        member: for a tar/zip archive at ``path``, the map's file inside it.

    A missing local file is an error here; a URL is fetched when the map is first rendered.
    """

    def __init__(self, path: str | Path, scale: float = 1.0, sha256: str | None = None,
                 member: str | None = None):
        from lit3d._compat import nullable
        from lit3d.assets import require_file

        self.source = str(path)
        self.sha256, self.member = nullable(sha256), nullable(member)
        require_file(self.source, "environment map")
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        self.scale = float(scale)
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The map's file on disk (fetched, verified and extracted on first access)."""
        if self._path is None:
            from lit3d.assets import fetch_asset

            self._path = fetch_asset(self.source, self.sha256, self.member,
                                     what="environment map")
        return self._path

    def image(self, height: int | None = None) -> np.ndarray:
        import mitsuba as mi
        import torch

        from lit3d.render.backend import bitmap_io_threads, import_mitsuba, mitsuba_variant_for

        if mi.variant() is None:  # any variant reads bitmaps; pick the one renders will use
            import_mitsuba(mitsuba_variant_for(torch.device("cuda" if torch.cuda.is_available()
                                                            else "cpu")))
        path = self.path
        try:
            with bitmap_io_threads():
                bitmap = mi.Bitmap(str(path)).convert(
                    mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.Float32, srgb_gamma=False)
        except Exception as error:  # noqa: BLE001 (Mitsuba raises RuntimeError variants)
            raise ValueError(f"could not read environment map {path}: {error}") from error
        return np.ascontiguousarray(np.asarray(bitmap), dtype=np.float32) * self.scale


def default_environment(environment: Environment | None) -> Environment:
    """``environment``, or the procedural :class:`SunSky` when it is ``None``; anything else
    is refused."""
    environment = environment if environment is not None else SunSky()
    if not isinstance(environment, Environment):
        raise TypeError(f"environment must be an Environment, got {type(environment).__name__}")
    return environment


def envmap_emitter(mi, environment: Environment, resolution: int) -> dict:
    """Mitsuba ``envmap`` emitter of ``environment`` rendered at ``resolution`` rows, turned so
    that the map's ``+y`` up is the world's ``+z``."""
    return {"type": "envmap", "bitmap": mi.Bitmap(environment.image(resolution)),
            "to_world": mi.ScalarTransform4f().rotate(axis=[1, 0, 0], angle=90)}
