"""Mitsuba 3 / Dr.Jit back-end (the default renderer).

CPU: variant ``llvm_ad_rgb`` (needs libLLVM >= 17, see :mod:`lit3d.render.llvm`); CUDA tensors:
``cuda_ad_rgb``. The mesh is a Mitsuba ``Mesh`` with vertex normals (smooth shading: flat-shaded
meshes under a point light gave geometry gradients 2x off finite differences), a ``diffuse`` BSDF,
a ``point`` emitter and a ``constant`` environment (the uniform grey background). Torch interop is
``dr.wrap(source="torch", target="drjit")``: gradients flow from the image to the vertex tensor.

The default integrator ``direct_projective`` with ``sppi=0`` differentiates silhouettes (projective
sampling of primary-visibility discontinuities) as well as shading; ``prb`` is faster but has no
silhouette gradients.
"""

from __future__ import annotations

from contextlib import contextmanager

import threading
from typing import Any

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.render.base import Renderer, Seed, view_seeds
from lit3d.render.environment import Environment
from lit3d.render.llvm import check_libllvm, configure_libllvm

_VARIANT_LOCK = threading.Lock()


def mitsuba_variant_for(device: torch.device) -> str:
    """``cuda_ad_rgb`` for CUDA tensors, ``llvm_ad_rgb`` otherwise."""
    return "cuda_ad_rgb" if device.type == "cuda" else "llvm_ad_rgb"


def import_mitsuba(variant: str):
    """Imports Mitsuba with ``variant`` active (a process-wide setting) and returns ``(mi, dr)``.

    Raises ``RuntimeError`` if another AD variant is already active or libLLVM is too old.
    """
    with _VARIANT_LOCK:
        if variant.startswith("llvm"):
            configure_libllvm()
        import drjit as dr
        import mitsuba as mi

        current = mi.variant()
        if current is None or current.startswith("scalar"):
            mi.set_variant(variant)
        elif current != variant:
            raise RuntimeError(
                f"Mitsuba variant {current!r} is already active in this process; cannot switch "
                f"to {variant!r} (keep all tensors of a run on one device)"
            )
        if variant.startswith("llvm"):
            check_libllvm()
        return mi, dr


_DEFAULT_THREADS: int | None = None


def match_determinism(dr, variant: str) -> None:
    """Runs Dr.Jit's LLVM back-end on one thread while torch is in deterministic mode
    (``Trainer(deterministic=True)``), on its default thread pool otherwise. Mitsuba accumulates
    gradients with atomic float adds whose order varies between threads, so two multi-threaded
    runs differ by ~1e-6 after a few steps (measured, and more after remeshing amplifies it);
    on one thread they are bit-identical. The CUDA back-end's atomics stay unordered."""
    global _DEFAULT_THREADS
    if not variant.startswith("llvm"):
        return
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = dr.thread_count()
    wanted = 1 if torch.are_deterministic_algorithms_enabled() else _DEFAULT_THREADS
    if dr.thread_count() != wanted:
        dr.set_thread_count(wanted)


@contextmanager
def bitmap_io_threads():
    """Mitsuba's OpenEXR reader and writer wait on Dr.Jit's thread pool and hang forever when it
    has one thread (as in deterministic mode; measured): bitmap file I/O gets two threads for
    its duration."""
    import drjit as dr

    count = dr.thread_count()
    if count < 2:
        dr.set_thread_count(2)
    try:
        yield
    finally:
        if dr.thread_count() != count:
            dr.set_thread_count(count)


def _vertex_positions_key(params) -> str:
    """Name of the mesh-positions parameter (Mitsuba renamed it across versions)."""
    for key in params.keys():
        if key.startswith("mesh.") and key.endswith(("vertex_positions", "positions")):
            return key
    raise KeyError(f"no vertex-position parameter among {list(params.keys())}")


class MitsubaRenderer(Renderer):
    """Differentiable Mitsuba 3 renderer of one diffuse mesh (contract: :mod:`lit3d.render.base`).

    Args:
        image_size: output height = width, pixels.
        spp: samples per pixel of training renders.
        integrator: Mitsuba integrator plugin (``direct_projective``, ``prb``, ``direct``, ...).
        integrator_options: extra plugin parameters; projective integrators default to
            ``sppi=0`` (no indirect-visibility samples: 7-10x faster, same direct silhouettes).
        albedo: diffuse reflectance in [0, 1].
        background: radiance of the uniform grey environment.
    """

    def __init__(
        self,
        image_size: int = 64,
        spp: int = 16,
        integrator: str = "direct_projective",
        integrator_options: dict[str, Any] | None = None,
        albedo: float = 0.8,
        background: float = 0.3,
    ):
        super().__init__(image_size=image_size, albedo=albedo, background=background)
        if spp < 1:
            raise ValueError(f"spp must be >= 1, got {spp}")
        self.spp = int(spp)
        self.integrator = integrator
        options = dict(integrator_options or {})
        if "projective" in integrator:
            options.setdefault("sppi", 0)
        self.integrator_options = options
        self._scene = None
        self._params = None
        self._faces_key: tuple | None = None
        self._wrapped = None
        #: Differentiate every render by re-rendering it in the backward pass (as a batch of
        #: views always is). Needed when other differentiable Mitsuba renders (of any scene)
        #: happen between this render and its backward pass: Dr.Jit's pending AD state then
        #: corrupts the gradient (measured: MEI3DPopulation's units, one scene each).
        self.replay_backward = False

    def __getstate__(self) -> dict:
        """Pickles the settings only (for spawned processes and deep copies); the Mitsuba scene
        is rebuilt on the next render."""
        state = self.__dict__.copy()
        state.update(_scene=None, _params=None, _faces_key=None, _wrapped=None)
        return state

    # -- scene ---------------------------------------------------------------------------------
    @staticmethod
    def _topology_key(faces: Tensor, num_vertices: int) -> tuple:
        return (tuple(faces.shape), faces.detach().cpu().numpy().tobytes(), num_vertices)

    def _build_scene(self, mi, dr, faces: Tensor, num_vertices: int) -> None:
        import numpy as np

        mesh = mi.Mesh(
            "mesh",
            vertex_count=num_vertices,
            face_count=int(faces.shape[0]),
            has_vertex_normals=True,
            has_vertex_texcoords=False,
        )
        mesh_params = mi.traverse(mesh)
        mesh_params["faces"] = mi.UInt32(faces.detach().cpu().numpy().astype(np.uint32).ravel())
        mesh_params.update()
        # Two-sided: a folded sheet shows its back, which must shade like its front.
        mesh.set_bsdf(mi.load_dict({
            "type": "twosided",
            "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": self.albedo}},
        }))
        scene = mi.load_dict(
            {
                "type": "scene",
                "integrator": {"type": self.integrator, **self.integrator_options},
                "sensor": {
                    "type": "perspective",
                    "fov": 35.0,
                    "fov_axis": "x",
                    "to_world": mi.ScalarTransform4f().look_at(
                        origin=[0, 0, 4], target=[0, 0, 0], up=[0, 1, 0]
                    ),
                    "film": {
                        "type": "hdrfilm",
                        "width": self.image_size,
                        "height": self.image_size,
                        "pixel_format": "rgb",
                        "rfilter": {"type": "box"},
                        # Projective integrators need the border to account for geometry moving
                        # in or out of the frame.
                        "sample_border": "projective" in self.integrator,
                    },
                    "sampler": {"type": "independent", "sample_count": self.spp},
                },
                **self._emitters(mi),
                "mesh": mesh,
            }
        )
        params = mi.traverse(scene)
        key = _vertex_positions_key(params)
        self._scene, self._params = scene, params
        self._faces_key = self._topology_key(faces, num_vertices)

        @dr.wrap(source="torch", target="drjit")
        def render_view(positions, seed: int, spp: int):
            params[key] = positions.array
            params.update()
            return mi.render(scene, params, seed=seed, spp=spp)

        self._wrapped = render_view

    def _emitters(self, mi) -> dict[str, Any]:
        """The scene's lights: the views' point light and the uniform grey background."""
        return {
            "light": {
                "type": "point",
                "position": [0.0, 0.0, 4.0],
                "intensity": {"type": "rgb", "value": 1.0},
            },
            "background": {
                "type": "constant",
                "radiance": {"type": "rgb", "value": self.background},
                # Never chosen by emitter sampling (it would halve the point light's samples);
                # it is seen directly and lights the object through BSDF samples, which for
                # a cosine-weighted diffuse BSDF and an unoccluded surface have zero variance.
                "sampling_weight": 0.0,
            },
        }

    def _set_view(self, mi, view: dict) -> None:
        params = self._params
        params["sensor.to_world"] = mi.Transform4f().look_at(
            origin=view["camera_position"],
            target=view["camera_target"],
            up=view["camera_up"],
        )
        params["sensor.x_fov"] = float(view["fov_deg"])
        if "light.position" in params:
            params["light.position"] = mi.Point3f(*view["light_position"])
            params["light.intensity.value"] = mi.Color3f(float(view["light_intensity"]))

    # -- rendering -----------------------------------------------------------------------------
    def render(
        self, vertices: Tensor, faces: Tensor, views: Views, seed: Seed = 0, spp: int | None = None
    ) -> Tensor:
        variant = mitsuba_variant_for(vertices.device)
        mi, dr = import_mitsuba(variant)
        match_determinism(dr, variant)
        num_vertices = int(vertices.shape[-2])
        if self._scene is None or self._topology_key(faces, num_vertices) != self._faces_key:
            self._build_scene(mi, dr, faces, num_vertices)
        spp = self.spp if spp is None else int(spp)
        images = []
        seeds = view_seeds(seed, len(views))
        # Mitsuba's backward pass renders again with the scene as it is *then* (camera, light,
        # vertex variable): with several views, each view's gradient must be taken with its own
        # scene, so it is recomputed view by view in the backward pass (_ViewRender).
        replay = ((len(views) > 1 or self.replay_backward) and vertices.requires_grad
                  and torch.is_grad_enabled())
        for b, view in enumerate(views.as_dicts()):
            positions = vertices if vertices.ndim == 2 else vertices[b]
            positions = positions.contiguous().float()
            if replay:
                image = _ViewRender.apply(positions, self, mi, view, seeds[b], spp)
            else:
                self._set_view(mi, view)
                image = self._wrapped(positions, seeds[b], spp)  # (H, W, 3)
            images.append(image.permute(2, 0, 1))
        return torch.stack(images).to(vertices.device)



class _ViewRender(torch.autograd.Function):
    """One view of a multi-view render: forward without Dr.Jit's AD graph; backward sets the
    view's scene again, re-renders it with the same seed (same samples, same image) and pulls
    the gradient through that render. Costs one more primal render per view in the backward
    pass, and makes a batch of views exact (a single shared scene would otherwise take every
    view's gradient with the last view's camera)."""

    @staticmethod
    def forward(ctx, positions, renderer, mi, view, seed, spp):
        ctx.renderer, ctx.mi, ctx.view, ctx.seed, ctx.spp = renderer, mi, view, seed, spp
        ctx.save_for_backward(positions)
        renderer._set_view(mi, view)
        return renderer._wrapped(positions.detach(), seed, spp)

    @staticmethod
    def backward(ctx, grad):
        (positions,) = ctx.saved_tensors
        leaf = positions.detach().requires_grad_(True)
        with torch.enable_grad():
            ctx.renderer._set_view(ctx.mi, ctx.view)
            image = ctx.renderer._wrapped(leaf, ctx.seed, ctx.spp)
            (gradient,) = torch.autograd.grad(image, leaf, grad)
        return gradient, None, None, None, None, None


class MitsubaEnvironmentRenderer(MitsubaRenderer):
    """MRD's shape scene: one floating diffuse, untextured object lit only by an environment
    (seen directly behind it), no point light. Same contract and mesh handling as
    :class:`MitsubaRenderer`; the views' light fields are ignored.

    Args:
        environment: an :class:`~lit3d.render.environment.Environment` (procedural sky or an
            HDR/EXR file); default a :class:`~lit3d.render.environment.SunSky`.
        environment_resolution: height of the lat-long map handed to Mitsuba (width 2×).
        image_size, spp, integrator, integrator_options, albedo: as :class:`MitsubaRenderer`.
    """

    def __init__(self, environment: Environment | None = None, environment_resolution: int = 128, image_size: int = 128,
                 spp: int = 16, integrator: str = "direct_projective",
                 integrator_options: dict[str, Any] | None = None, albedo: float = 0.8):
        super().__init__(image_size=image_size, spp=spp, integrator=integrator,
                         integrator_options=integrator_options, albedo=albedo, background=0.0)
        from lit3d.render.environment import SunSky

        environment = environment if environment is not None else SunSky()
        if not isinstance(environment, Environment):
            raise TypeError(f"environment must be an Environment, got {type(environment).__name__}")
        self.environment = environment
        self.environment_resolution = int(environment_resolution)

    def _emitters(self, mi) -> dict[str, Any]:
        image = self.environment.image(self.environment_resolution)
        return {
            "environment": {
                "type": "envmap",
                "bitmap": mi.Bitmap(image),
                # Mitsuba's envmap is +y up; the world is +z up.
                "to_world": mi.ScalarTransform4f().rotate(axis=[1, 0, 0], angle=90),
            }
        }
