"""Materials of MRD's material scene (MRD paper, sec. 3 and Table 1).

Two sides:

- **Targets**: Mitsuba BSDFs the reconstruction must match — :class:`DiffuseTextured` (a
  textured albedo), :class:`BrushedMetal` (an anisotropic rough conductor with streaks),
  :class:`Aurora` (a rough conductor with a colour-shifting tint, standing in for the measured
  "aurora" material of Dupuy & Jakob 2018), :class:`Translucent` (a rough dielectric), and
  :class:`KnownPrincipled` (a Principled BSDF with known parameters: the one target whose
  parameters can be recovered exactly, used to validate the optimizer), and :class:`Measured`
  (a measured BSDF file of RGL's database, the materials MRD used).
- **The Principled BSDF being optimized**: :data:`PRINCIPLED_PARAMETERS` lists its parameters,
  their start values and valid ranges; :func:`clamp_principled` projects values back into those
  ranges after every step.

Every target's ``bsdf(mi)`` returns a Mitsuba plugin dict; textures are procedural (numpy), so
nothing is downloaded except a :class:`Measured` file. Texture values are linear (``raw``), in
[0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class ParameterSpec:
    """One Principled-BSDF parameter: ``channels`` (3 = RGB, 1 = scalar), the value a
    reconstruction starts from, and the valid range ``[low, high]`` it is clamped to."""

    channels: int
    start: float | tuple[float, float, float]
    low: float
    high: float
    #: Mitsuba stores it as a plain float, not a texture (``eta``): it cannot be textured.
    plain: bool = False


#: The Principled BSDF's optimizable parameters (Mitsuba ``principled`` plugin names). All lie in
#: [0, 1] except the index of refraction ``eta``, kept in [1.01, 3] (1 is no interface and
#: breaks transmission; 3 is beyond every common dielectric). ``specular`` is not listed:
#: Mitsuba derives it from ``eta`` (one or the other), and MRD optimizes ``eta``.
PRINCIPLED_PARAMETERS: dict[str, ParameterSpec] = {
    "base_color": ParameterSpec(3, (0.5, 0.5, 0.5), 0.0, 1.0),
    "roughness": ParameterSpec(1, 0.5, 0.0, 1.0),
    "metallic": ParameterSpec(1, 0.0, 0.0, 1.0),
    "anisotropic": ParameterSpec(1, 0.0, 0.0, 1.0),
    "spec_trans": ParameterSpec(1, 0.0, 0.0, 1.0),
    "eta": ParameterSpec(1, 1.5, 1.01, 3.0, plain=True),
    "spec_tint": ParameterSpec(1, 0.0, 0.0, 1.0),
    "sheen": ParameterSpec(1, 0.0, 0.0, 1.0),
    "sheen_tint": ParameterSpec(1, 0.0, 0.0, 1.0),
    "clearcoat": ParameterSpec(1, 0.0, 0.0, 1.0),
    "clearcoat_gloss": ParameterSpec(1, 0.0, 0.0, 1.0),
}


def select_parameters(pattern: str | Sequence[str]) -> list[str]:
    """Names of :data:`PRINCIPLED_PARAMETERS` matched by ``pattern``: a regular expression
    matched against the whole name (``"base_color|roughness"``, ``".*"`` for all, ``"spec_.*"``)
    or a list of them. Raises ``ValueError`` naming the valid names if nothing matches or a list
    entry matches nothing."""
    import re

    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    chosen: list[str] = []
    for p in patterns:
        try:
            regex = re.compile(p)
        except re.error as error:
            raise ValueError(f"bad parameter pattern {p!r}: {error}") from error
        matched = [n for n in PRINCIPLED_PARAMETERS if regex.fullmatch(n)]
        if not matched:
            raise ValueError(f"parameter pattern {p!r} matches none of the Principled BSDF's "
                             f"parameters: {', '.join(PRINCIPLED_PARAMETERS)}")
        chosen += [n for n in matched if n not in chosen]
    return [n for n in PRINCIPLED_PARAMETERS if n in chosen]  # canonical order


def parameter_shape(name: str, texture_resolution: int | None) -> tuple[int, ...]:
    """Shape of a parameter's tensor: (R, R, C) texture (C = 3 for colours, 1 otherwise) or
    (C,) uniform value."""
    spec = PRINCIPLED_PARAMETERS[name]
    if texture_resolution is None:
        return (spec.channels,)
    if spec.plain:
        raise ValueError(f"{name!r} is a plain float in Mitsuba's Principled BSDF and cannot "
                         "be a texture")
    if texture_resolution < 2:
        raise ValueError(f"texture resolution of {name!r} must be >= 2 (Mitsuba's smallest "
                         f"bitmap), got {texture_resolution}")
    return (int(texture_resolution), int(texture_resolution), spec.channels)


def start_value(name: str, shape: tuple[int, ...], value: float | Sequence[float] | None = None
                ) -> Tensor:
    """A parameter's start tensor of ``shape``: ``value`` (a scalar, or one per channel) or
    the :data:`PRINCIPLED_PARAMETERS` default, broadcast; checked against the valid range."""
    spec = PRINCIPLED_PARAMETERS[name]
    value = spec.start if value is None else value
    tensor = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if tensor.numel() not in (1, spec.channels):
        raise ValueError(f"start value of {name!r} needs 1 or {spec.channels} numbers, got "
                         f"{tensor.numel()}")
    if not ((tensor >= spec.low) & (tensor <= spec.high)).all():
        raise ValueError(f"start value of {name!r} must lie in [{spec.low}, {spec.high}], got "
                         f"{tensor.tolist()}")
    return tensor.expand(shape[-1]).expand(shape).clone()


@torch.no_grad()
def clamp_principled(values: dict[str, Tensor]) -> None:
    """Clamps each named parameter tensor, in place, to its valid range
    (:data:`PRINCIPLED_PARAMETERS`): the projection MRD applies after every step."""
    for name, tensor in values.items():
        spec = PRINCIPLED_PARAMETERS[name]
        tensor.clamp_(spec.low, spec.high)


def principled_dict(values: dict[str, np.ndarray | Sequence[float] | float]) -> dict[str, Any]:
    """Mitsuba ``principled`` plugin dict from parameter values: (R, R, C) arrays become linear
    bitmap textures, (C,) colours uniform 2x2 bitmaps (Mitsuba's smallest), plain floats
    otherwise. Parameters
    not given keep Mitsuba's defaults, except that ``metallic``, ``anisotropic`` and
    ``spec_trans`` are always set so their lobes exist (Mitsuba creates a lobe only for
    parameters present when the BSDF is built)."""
    import mitsuba as mi

    values = {"metallic": 0.0, "anisotropic": 0.0, "spec_trans": 0.0, **values}
    plugin: dict[str, Any] = {"type": "principled"}
    for name, value in values.items():
        spec = PRINCIPLED_PARAMETERS[name]
        array = np.asarray(value, dtype=np.float32)
        if spec.plain:
            plugin[name] = float(array.reshape(-1)[0])
        elif array.ndim == 3 or spec.channels == 3:
            image = (np.broadcast_to(array.reshape(1, 1, -1), (2, 2, array.size))
                     if array.ndim < 3 else array)
            if image.shape[-1] == 1 and spec.channels == 3:
                image = np.repeat(image, 3, axis=-1)
            plugin[name] = _bitmap(mi, image)
        else:
            plugin[name] = float(array.reshape(-1)[0])
    return plugin


# -- procedural textures ---------------------------------------------------------------------
def uv_grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(R, R) u and v of texel centres (row 0 = v near 0)."""
    t = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution
    v, u = np.meshgrid(t, t, indexing="ij")
    return u, v


def patchwork_texture(resolution: int = 128, cells: int = 6, seed: int = 0,
                      colors: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """(R, R, 3) albedo of random coloured patches on a ``cells`` x ``cells`` grid, softened by
    a sine pattern (a textured diffuse target)."""
    rng = np.random.default_rng(seed)
    palette = np.asarray(colors if colors is not None else
                         [[0.75, 0.25, 0.15], [0.2, 0.45, 0.7], [0.85, 0.75, 0.3],
                          [0.25, 0.6, 0.3], [0.8, 0.8, 0.75]], dtype=np.float32)
    choice = rng.integers(0, len(palette), size=(cells, cells))
    u, v = uv_grid(resolution)
    cell = palette[choice[(v * cells).astype(int), (u * cells).astype(int)]]
    shade = 0.85 + 0.15 * np.sin(2 * math.pi * 3 * (u + v))[..., None]
    return np.clip(cell * shade, 0, 1).astype(np.float32)


def streak_texture(resolution: int = 128, streaks: int = 40, seed: int = 0) -> np.ndarray:
    """(R, R, 1) values in [0, 1] that vary along v only: fine streaks, as brushing leaves."""
    rng = np.random.default_rng(seed)
    _, v = uv_grid(resolution)
    phases = rng.uniform(0, 2 * math.pi, size=4)
    freqs = streaks * np.array([1.0, 1.7, 2.9, 4.3])
    signal = sum(np.sin(2 * math.pi * f * v + p) for f, p in zip(freqs, phases)) / 4
    return (0.5 + 0.5 * signal)[..., None].astype(np.float32)


def hue_bands_texture(resolution: int = 128, bands: float = 2.0) -> np.ndarray:
    """(R, R, 3) smoothly cycling hues in [0.2, 1] (an aurora-like tint)."""
    u, v = uv_grid(resolution)
    phase = 2 * math.pi * bands * (0.6 * u + 0.4 * v)
    rgb = np.stack([np.sin(phase + k * 2 * math.pi / 3) for k in range(3)], axis=-1)
    return (0.6 + 0.4 * rgb).astype(np.float32)


def _bitmap(mi, image: np.ndarray) -> dict[str, Any]:
    return {"type": "bitmap", "bitmap": mi.Bitmap(np.ascontiguousarray(image, np.float32)),
            "raw": True}


# -- targets ---------------------------------------------------------------------------------
class Material:
    """A target material: ``bsdf(mi)`` returns the Mitsuba BSDF plugin dict."""

    def bsdf(self, mi) -> dict[str, Any]:
        raise NotImplementedError

    def known_parameters(self) -> dict[str, Tensor] | None:
        """The Principled-BSDF parameters that reproduce this material exactly, if any
        (only :class:`KnownPrincipled`): what a reconstruction's error is measured against."""
        return None


class DiffuseTextured(Material):
    """Lambertian surface with a procedural patchwork albedo (:func:`patchwork_texture`)."""

    def __init__(self, resolution: int = 128, cells: int = 6, seed: int = 0):
        self.texture = patchwork_texture(resolution, cells, seed)

    def bsdf(self, mi) -> dict[str, Any]:
        return {"type": "diffuse", "reflectance": _bitmap(mi, self.texture)}


class BrushedMetal(Material):
    """Anisotropic GGX conductor (aluminium by default): rough across the brushing direction
    (``alpha_v``), smooth along it (``alpha_u``), with fine streaks of varying roughness
    (:func:`streak_texture`) and a slightly tinted reflectance."""

    def __init__(self, alpha_u: float = 0.05, alpha_v: float = 0.35, streak_amount: float = 0.5,
                 material: str = "Al", resolution: int = 128, seed: int = 0):
        if not (0 < alpha_u <= 1 and 0 < alpha_v <= 1):
            raise ValueError("alpha_u and alpha_v must be in (0, 1]")
        self.alpha_u, self.alpha_v, self.material = alpha_u, alpha_v, material
        streaks = streak_texture(resolution, seed=seed)
        self.alpha_v_texture = np.clip(alpha_v * (1 - streak_amount / 2 + streak_amount * streaks),
                                       1e-3, 1).astype(np.float32)

    def bsdf(self, mi) -> dict[str, Any]:
        return {"type": "roughconductor", "distribution": "ggx", "material": self.material,
                "alpha_u": self.alpha_u, "alpha_v": _bitmap(mi, self.alpha_v_texture),
                "specular_reflectance": {"type": "rgb", "value": [0.95, 0.93, 0.9]}}


class Aurora(Material):
    """Rough conductor with a hue-cycling reflectance tint (:func:`hue_bands_texture`): strong,
    coloured highlights, as the measured "aurora" material MRD uses."""

    def __init__(self, alpha: float = 0.15, material: str = "Ag", resolution: int = 128,
                 bands: float = 2.0):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.material = alpha, material
        self.tint = hue_bands_texture(resolution, bands)

    def bsdf(self, mi) -> dict[str, Any]:
        return {"type": "roughconductor", "distribution": "ggx", "alpha": self.alpha,
                "material": self.material, "specular_reflectance": _bitmap(mi, self.tint)}


class Translucent(Material):
    """Rough dielectric (glass-like, ``int_ior``) with a patchwork transmittance tint:
    translucency needs a path tracer with enough bounces (``max_depth`` >= 6)."""

    def __init__(self, alpha: float = 0.1, int_ior: float = 1.5, resolution: int = 64,
                 seed: int = 1):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not 1.0 < int_ior < 4.0:
            raise ValueError(f"int_ior must be in (1, 4), got {int_ior}")
        self.alpha, self.int_ior = alpha, int_ior
        self.tint = 0.5 + 0.5 * patchwork_texture(resolution, 4, seed)

    def bsdf(self, mi) -> dict[str, Any]:
        return {"type": "roughdielectric", "distribution": "ggx", "alpha": self.alpha,
                "int_ior": self.int_ior, "specular_transmittance": _bitmap(mi, self.tint)}


class Measured(Material):
    """A measured BSDF of RGL's material database (Dupuy & Jakob 2018) through Mitsuba's
    ``measured`` plugin: an ``*_rgb.bsdf`` file (lit3d renders in RGB variants), e.g. the
    ``cc_nothern_aurora`` and ``weta_brushed_steel_satin_pink`` materials MRD reconstructs.

    Args:
        path: the ``.bsdf`` file, or a URL fetched once into the cache
            (:func:`lit3d.assets.fetch_asset`).
        sha256: its checksum (logged when a URL has none).
        member: for a tar/zip archive at ``path``, the file inside it.

    Measured materials reflect only (no transmission) and are not textured: the reconstruction
    matches their appearance, there are no known parameters to recover.
    """

    def __init__(self, path: str, sha256: str | None = None, member: str | None = None):
        from lit3d._compat import nullable
        from lit3d.assets import require_file

        require_file(str(path), "measured BSDF file")
        self.source, self.sha256, self.member = str(path), nullable(sha256), nullable(member)

    def bsdf(self, mi) -> dict[str, Any]:
        from lit3d.assets import fetch_asset

        path = fetch_asset(self.source, self.sha256, self.member, what="measured BSDF")
        return {"type": "measured", "filename": str(path)}


class KnownPrincipled(Material):
    """A Principled BSDF with uniform, known parameters (names of
    :data:`PRINCIPLED_PARAMETERS`; the others keep the reconstruction's start values). The
    pixel-loss baseline should recover them: the validation of the whole optimizer."""

    def __init__(self, base_color: Sequence[float] = (0.8, 0.35, 0.2), roughness: float = 0.3,
                 metallic: float = 0.6, **others: float):
        self.values: dict[str, Tensor] = {}
        for name, value in {"base_color": base_color, "roughness": roughness,
                            "metallic": metallic, **others}.items():
            if name not in PRINCIPLED_PARAMETERS:
                raise ValueError(f"unknown Principled BSDF parameter {name!r}; known: "
                                 f"{', '.join(PRINCIPLED_PARAMETERS)}")
            spec = PRINCIPLED_PARAMETERS[name]
            self.values[name] = start_value(name, (spec.channels,), value)

    def bsdf(self, mi) -> dict[str, Any]:
        values = {name: PRINCIPLED_PARAMETERS[name].start for name in ("base_color", "roughness")}
        values.update({k: v.numpy() for k, v in self.values.items()})
        return principled_dict(values)

    def known_parameters(self) -> dict[str, Tensor]:
        return {k: v.clone() for k, v in self.values.items()}
