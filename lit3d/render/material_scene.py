"""MRD's material scene (sec. 2.3): an object on a checkerboard floor under one environment map,
rendered by a path tracer, differentiable with respect to the object's Principled-BSDF parameters.

The object is Mitsuba's analytic unit ``sphere`` (it has texture coordinates, so textured
parameters are well defined), a built-in ``cube``, or a mesh file with UVs (``.obj``/``.ply``,
e.g. MRD's dragon); it rests on a checkerboard ``rectangle`` at ``z = floor_height``. Cameras come
from :class:`~lit3d.data.views.Views` (their point light is ignored: the environment is the only
light). Renders are linear radiance (B, 3, H, W), channels first.

Torch interop: one ``dr.wrap`` call per batch sets the BSDF parameters once, renders every
(view, seed) of the batch with its own sensor object (``mi.render(..., sensor=...)``) and
returns all images, so the backward pass of each image runs with the very scene state of its
forward pass (cameras never mutate the shared scene; the gradient test checks a batch against
single views).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.errors import InputError
from lit3d.render.backend import import_mitsuba, match_threads, mitsuba_variant_for
from lit3d.render.base import Seed, view_seeds
from lit3d.render.environment import Environment, default_environment, envmap_emitter
from lit3d.render.materials import PRINCIPLED_PARAMETERS, Material, principled_dict

#: Integrators that path-trace (indirect light, Monte Carlo noise in every pixel): MRD uses the
#: dual-buffer loss with them.
PATH_TRACERS = ("path", "prb", "prb_basic", "volpath", "volprb", "prbvolpath")


class MaterialRenderer:
    """Renders MRD's material scene with a given BSDF on the object.

    Args:
        image_size: output height = width, pixels.
        spp: samples per pixel of training renders.
        integrator: ``prb`` (path replay backpropagation: path tracing, light memory) or
            ``path`` (naive AD through the path tracer: heavy memory, what MRD uses for
            translucency), or any Mitsuba integrator.
        max_depth: longest light path (MRD: truncating it changes translucent results).
        environment: the environment light (default :class:`~lit3d.render.environment.SunSky`).
        environment_resolution: height of the lat-long map handed to Mitsuba.
        object: ``"sphere"`` (radius 1 at the origin), ``"cube"`` (half-size 1), or a mesh file
            path (``.obj``/``.ply``; textured parameters need its UVs).
        floor: put the checkerboard floor under the object.
        floor_height: ``z`` of the floor (the object spans [-1, 1]).
        floor_size: half-width of the floor square, world units.
        checks: checker squares along each side of the floor.
    """

    def __init__(self, image_size: int = 64, spp: int = 16, integrator: str = "prb",
                 max_depth: int = 4, environment: Environment | None = None,
                 environment_resolution: int = 64, object: str = "sphere", floor: bool = True,
                 floor_height: float = -1.0, floor_size: float = 4.0, checks: int = 8):
        if int(image_size) < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
        if spp < 1:
            raise ValueError(f"spp must be >= 1, got {spp}")
        if max_depth < 2 and max_depth != -1:
            raise ValueError(f"max_depth must be >= 2 (or -1: unbounded), got {max_depth}")
        if object not in ("sphere", "cube"):
            path = Path(object).expanduser()
            if not path.is_file():
                raise InputError(f"object mesh not found: {path}")
            if path.suffix.lower() not in (".obj", ".ply"):
                raise InputError(f"object mesh must be .obj or .ply, got {path.name}")
        environment = default_environment(environment)
        self.image_size, self.spp, self.integrator = int(image_size), int(spp), integrator
        self.max_depth = int(max_depth)
        self.environment, self.environment_resolution = environment, int(environment_resolution)
        self.object, self.floor = object, bool(floor)
        self.floor_height, self.floor_size = float(floor_height), float(floor_size)
        self.checks = int(checks)
        self._scenes: dict[Any, Any] = {}
        self._sensors: dict[tuple, Any] = {}

    @property
    def path_traced(self) -> bool:
        return self.integrator in PATH_TRACERS

    def __getstate__(self) -> dict:
        """Settings only; Mitsuba scenes and sensors are rebuilt on the next render."""
        state = self.__dict__.copy()
        state.update(_scenes={}, _sensors={})
        return state

    # -- scene ---------------------------------------------------------------------------------
    def _mitsuba(self, device: torch.device):
        variant = mitsuba_variant_for(device)
        mi, dr = import_mitsuba(variant)
        match_threads(dr, variant)
        return mi, dr

    def _object(self, mi, bsdf: dict[str, Any]) -> dict[str, Any]:
        if self.object in ("sphere", "cube"):
            return {"type": self.object, "bsdf": bsdf}
        suffix = Path(self.object).suffix.lower().lstrip(".")
        return {"type": suffix, "filename": str(Path(self.object).expanduser()), "bsdf": bsdf}

    def scene_dict(self, mi, bsdf: dict[str, Any]) -> dict[str, Any]:
        """The Mitsuba scene description with ``bsdf`` on the object (no sensor: sensors are
        made per view)."""
        scene: dict[str, Any] = {
            "type": "scene",
            "integrator": {"type": self.integrator, "max_depth": self.max_depth},
            "environment": envmap_emitter(mi, self.environment, self.environment_resolution),
            "object": self._object(mi, bsdf),
        }
        if self.floor:
            scene["floor"] = {
                "type": "rectangle",
                "to_world": mi.ScalarTransform4f().translate([0, 0, self.floor_height])
                .scale([self.floor_size, self.floor_size, 1]),
                "bsdf": {"type": "diffuse", "reflectance": {
                    "type": "checkerboard",
                    "color0": {"type": "rgb", "value": [0.15, 0.15, 0.15]},
                    "color1": {"type": "rgb", "value": [0.6, 0.6, 0.6]},
                    "to_uv": mi.ScalarTransform4f().scale([self.checks / 2, self.checks / 2, 1]),
                }},
            }
        return scene

    def _scene(self, mi, key, bsdf_factory):
        if key not in self._scenes:
            try:
                self._scenes[key] = mi.load_dict(self.scene_dict(mi, bsdf_factory()))
            except RuntimeError as error:
                raise InputError(f"could not build the material scene ({self.object}): "
                                 f"{error}") from error
        return self._scenes[key]

    def _sensor(self, mi, view: dict) -> Any:
        key = tuple(tuple(v) if isinstance(v, list) else v for v in view.values())
        if key not in self._sensors:
            self._sensors[key] = mi.load_dict({
                "type": "perspective",
                "fov": float(view["fov_deg"]),
                "fov_axis": "x",
                "to_world": mi.ScalarTransform4f().look_at(
                    origin=view["camera_position"], target=view["camera_target"],
                    up=view["camera_up"]),
                "film": {"type": "hdrfilm", "width": self.image_size, "height": self.image_size,
                         "pixel_format": "rgb", "rfilter": {"type": "box"}},
                "sampler": {"type": "independent", "sample_count": self.spp},
            })
        return self._sensors[key]

    # -- rendering -----------------------------------------------------------------------------
    @torch.no_grad()
    def render_material(self, material: Material, views: Views, seed: Seed = 0,
                        spp: int | None = None) -> Tensor:
        """(B, 3, H, W) renders of a fixed target ``material`` (no gradients)."""
        mi, dr = self._mitsuba(views.camera_position.device)
        scene = self._scene(mi, ("target", id(material)), lambda: material.bsdf(mi))
        spp = self.spp if spp is None else int(spp)
        images = [mi.render(scene, sensor=self._sensor(mi, view), seed=s, spp=spp).torch()
                  .clone() for view, s in zip(views.as_dicts(), view_seeds(seed, len(views)))]
        return torch.stack(images).permute(0, 3, 1, 2).to(views.camera_position.device)

    def render(self, values: dict[str, Tensor], views: Views, seed: Seed = 0,
               spp: int | None = None) -> Tensor:
        """(B, 3, H, W) renders with the object's Principled BSDF set to ``values``,
        differentiable with respect to them.

        ``values`` maps :data:`~lit3d.render.materials.PRINCIPLED_PARAMETERS` names to (C,)
        uniform values or (R, R, C) textures (C = 3 for ``base_color``, else 1); parameters
        not given keep their start values. The scene is built on the first call for these
        names and shapes."""
        names = list(values)
        for name in names:
            if name not in PRINCIPLED_PARAMETERS:
                raise ValueError(f"unknown Principled BSDF parameter {name!r}")
        device = views.camera_position.device
        mi, dr = self._mitsuba(device)
        shapes = tuple((n, tuple(values[n].shape)) for n in names)

        def bsdf():
            start = {n: values[n].detach().cpu().numpy() for n in names}
            return principled_dict(start)

        scene = self._scene(mi, ("principled", shapes), bsdf)
        params = mi.traverse(scene)
        keys = [self._key(params, n) for n in names]
        sensors = [self._sensor(mi, view) for view in views.as_dicts()]
        seeds = view_seeds(seed, len(views))
        spp = self.spp if spp is None else int(spp)

        @dr.wrap(source="torch", target="drjit")
        def render_all(*arrays):
            for key, array in zip(keys, arrays):
                params[key] = array if key.endswith(".data") else mi.Float(array.array)
            params.update()
            return tuple(mi.render(scene, params, sensor=sensor, seed=s, spp=spp)
                         for sensor, s in zip(sensors, seeds))

        # Plain tensors (dr.wrap leaves an nn.Parameter, a subclass, unconverted). A uniform
        # value held in a bitmap (a colour: Mitsuba's bitmaps are at least 2x2, see
        # principled_dict) is broadcast to the bitmap's 2x2.
        tensors = [values[n].float().contiguous().view(values[n].shape) for n in names]
        tensors = [t.reshape(1, 1, -1).expand(2, 2, -1).contiguous()
                   if key.endswith(".data") and t.ndim == 1 else t
                   for key, t in zip(keys, tensors)]
        images = render_all(*tensors)
        return torch.stack(list(images)).permute(0, 3, 1, 2).to(device)

    @staticmethod
    def _key(params, name: str) -> str:
        for key in (f"object.bsdf.{name}.data", f"object.bsdf.{name}.value", f"object.bsdf.{name}"):
            if key in params:
                return key
        raise KeyError(f"the scene has no Principled parameter {name!r}")
