"""Mitsuba 3 / Dr.Jit back-end (the default renderer).

CPU: variant ``llvm_ad_rgb`` (needs libLLVM >= 17, see :mod:`lit3d.render.llvm`); CUDA tensors:
``cuda_ad_rgb``. The mesh is a Mitsuba ``Mesh`` with vertex normals (smooth shading: flat-shaded
meshes under a point light gave geometry gradients 2x off finite differences), a ``diffuse`` BSDF,
a ``point`` emitter and a ``constant`` environment (the uniform grey background). Torch interop:
each view is a torch autograd function (``_ViewRender``) whose forward pass renders the primal
image and whose backward pass runs the integrator's adjoint render, both on kernels Dr.Jit
records once and replays (``_Kernels``; of a projective integrator's adjoint, the shading
term and the silhouette samples' radiance differences); vertices and images cross by DLPack.

The default integrator ``direct_projective`` with ``sppi=0`` differentiates silhouettes (projective
sampling of primary-visibility discontinuities) as well as shading; ``prb`` is faster but has no
silhouette gradients. Projective integrators keep their primary-silhouette samples once drawn
(:func:`store_silhouette_samples`) instead of computing them twice per backward pass.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from typing import Any

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.render.backend import (
    import_mitsuba,
    match_threads,
    mitsuba_variant_for,
    to_drjit,
    to_torch,
)
from lit3d.render.base import Renderer, Seed, view_seeds
from lit3d.render.environment import Environment, default_environment, envmap_emitter

#: Scene parameter of the per-vertex albedo (a mesh attribute), when the render has colours.
COLOR_ATTRIBUTE = "vertex_color"
COLOR_KEY = f"mesh.{COLOR_ATTRIBUTE}"


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
        freeze: record the render's Dr.Jit kernels on the first call and replay them after
            (``dr.freeze``): same images and gradients, without re-tracing the integrator each
            render. Of the backward pass of projective integrators the shading term and the
            radiance differences across the silhouette samples are recorded; the silhouette
            sampling (Dr.Jit cannot record it: its edge distribution changes size every view)
            and the splatting around it are traced every time.
        silhouette_spp: projective integrators only: samples per pixel of the primary-silhouette
            gradient term (its most expensive part), if fewer than ``spp``; ``None`` uses ``spp``.
        shading_spp: projective integrators only: samples per pixel of the shading (interior)
            gradient term, if fewer than ``spp``; ``None`` uses ``spp``. The primal image always
            takes ``spp``.
    """

    def __init__(
        self,
        image_size: int = 64,
        spp: int = 16,
        integrator: str = "direct_projective",
        integrator_options: dict[str, Any] | None = None,
        albedo: float = 0.8,
        background: float = 0.3,
        freeze: bool = True,
        silhouette_spp: int | None = None,
        shading_spp: int | None = None,
    ):
        super().__init__(image_size=image_size, albedo=albedo, background=background)
        if spp < 1:
            raise ValueError(f"spp must be >= 1, got {spp}")
        for name, value in (("silhouette_spp", silhouette_spp), ("shading_spp", shading_spp)):
            if value is not None and (value < 1 or "projective" not in integrator):
                raise ValueError(f"{name} must be >= 1 and needs a projective integrator, "
                                 f"got {value} with {integrator!r}")
        self.silhouette_spp = None if silhouette_spp is None else int(silhouette_spp)
        self.shading_spp = None if shading_spp is None else int(shading_spp)
        self.spp = int(spp)
        self.integrator = integrator
        options = dict(integrator_options or {})
        if "projective" in integrator:
            options.setdefault("sppi", 0)
        self.integrator_options = options
        self.freeze = bool(freeze)
        self._scene = None
        self._params = None
        self._positions_key: str | None = None
        self._faces_key: tuple | None = None
        self._kernels = None
        self._state: object | None = None  # the scene state of the last forward pass
        #: Let a backward pass reuse the scene state its forward pass left (see _ViewRender);
        #: False sets it again every time (same images and gradients, measured by the tests).
        self.reuse_forward_state = True
        #: Projective integrators: evaluate the primary-silhouette samples once per backward
        #: pass (see :func:`store_silhouette_samples`); False leaves Mitsuba's schedule (same
        #: gradients, measured by the tests). Read by every backward pass.
        self.store_silhouette_samples = True
        #: Projective integrators with ``freeze``: replay the adjoint's shading term and the
        #: silhouette samples' radiance differences from recorded kernels (see
        #: :func:`_shading_adjoint`, :func:`_silhouette_radiance_difference`); False traces the
        #: whole adjoint as Mitsuba's ``render_backward`` (same gradients, measured by the
        #: tests).
        self.replay_shading_adjoint = True
        #: An untracked buffer equal to the one the scene already holds untracked is not set
        #: again (see :meth:`_set_buffer`): many views of one mesh (figures, tuning sweeps,
        #: validation) rebuild its BVH once; False sets it every time (same images, tests).
        self.reuse_unchanged_buffers = True
        #: How many times a buffer was handed to the scene (each rebuilds what depends on it).
        self.buffer_updates = 0
        self._held: dict[str, Tensor] = {}  # key -> the untracked values the scene holds

    def __getstate__(self) -> dict:
        """Pickles the settings only (for spawned processes and deep copies); the Mitsuba scene
        and its recorded kernels are rebuilt on the next render."""
        state = self.__dict__.copy()
        state.update(_scene=None, _params=None, _positions_key=None, _faces_key=None,
                     _kernels=None, _state=None, _held={})
        return state

    # -- scene ---------------------------------------------------------------------------------
    @staticmethod
    def _topology_key(faces: Tensor, num_vertices: int, colored: bool = False) -> tuple:
        return (tuple(faces.shape), faces.detach().cpu().numpy().tobytes(), num_vertices, colored)

    def _build_scene(self, mi, dr, faces: Tensor, num_vertices: int,
                     colored: bool = False) -> None:
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
        reflectance: dict[str, Any] = {"type": "rgb", "value": self.albedo}
        if colored:  # per-vertex albedo, interpolated over the faces
            mesh.add_attribute(COLOR_ATTRIBUTE, 3, [self.albedo] * (3 * num_vertices))
            reflectance = {"type": "mesh_attribute", "name": COLOR_ATTRIBUTE}
        # Two-sided: a folded sheet shows its back, which must shade like its front.
        mesh.set_bsdf(mi.load_dict({
            "type": "twosided", "bsdf": {"type": "diffuse", "reflectance": reflectance}}))
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
        self._scene, self._params = scene, params
        self._positions_key = _vertex_positions_key(params)
        self._faces_key = self._topology_key(faces, num_vertices, colored)
        self._kernels = _Kernels(mi, dr, self.freeze, "projective" in self.integrator,
                                 tuple(self.integrator_options.get(term)
                                       for term in ("sppc", "sppp", "sppi")))
        self._state = None
        self._held = {}

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

    def _set_buffer(self, mi, dr, key: str, values, grad: bool):
        """Hands a torch tensor to the scene parameter ``key`` (a copy on the Dr.Jit side:
        the mesh positions, or the per-vertex ``vertex_color``), tracking its gradient if
        ``grad``; returns the Dr.Jit array. Updating the positions rebuilds the BVH and the
        vertex normals, so untracked values equal to the untracked ones the scene holds are
        not handed over again (``reuse_unchanged_buffers``); the view's camera and light are
        applied either way."""
        held = self._held.get(key)
        if (not grad and held is not None and self.reuse_unchanged_buffers
                and (held.shape, held.dtype, held.device)
                == (values.shape, values.dtype, values.device)
                and torch.equal(held, values.detach())):
            self._params.update()
            return self._params[key]
        array = to_drjit(dr, mi, values.reshape(-1)).array
        if grad:
            dr.enable_grad(array)
            self._held.pop(key, None)
        else:
            self._held[key] = values.detach().clone()
        self._params[key] = array
        self._params.update()
        self.buffer_updates += 1
        return array

    # -- rendering -----------------------------------------------------------------------------
    def render(
        self, vertices: Tensor, faces: Tensor, views: Views, seed: Seed = 0, spp: int | None = None,
        colors: Tensor | None = None,
    ) -> Tensor:
        variant = mitsuba_variant_for(vertices.device)
        mi, dr = import_mitsuba(variant)
        match_threads(dr, variant)
        num_vertices = int(vertices.shape[-2])
        colored = colors is not None
        key = self._topology_key(faces, num_vertices, colored)
        if self._scene is None or key != self._faces_key:
            self._build_scene(mi, dr, faces, num_vertices, colored)
        spp = self.spp if spp is None else int(spp)
        seeds = view_seeds(seed, len(views))
        images = []
        for b, view in enumerate(views.as_dicts()):
            positions = vertices if vertices.ndim == 2 else vertices[b]
            albedo = None if colors is None else (colors if colors.ndim == 2 else colors[b])
            track = self.reuse_forward_state and torch.is_grad_enabled() and (
                positions.requires_grad or (albedo is not None and albedo.requires_grad))
            image = _ViewRender.apply(positions, albedo, self, mi, dr, view, seeds[b],
                                      spp, track, faces)  # (H, W, 3)
            images.append(image.permute(2, 0, 1))
        return torch.stack(images).to(vertices.device)


@functools.cache
def _stored_silhouettes_class() -> type:
    from mitsuba.ad.projective import ProjectiveDetail

    class StoredSilhouetteSamples(ProjectiveDetail):
        #: ``(scene, ss, active) -> (radiance, wavelengths)``: the recorded radiance
        #: differences (:class:`_Kernels` sets it for one backward pass), or None: traced.
        replay = None

        def eval_primary_silhouette_radiance_difference(self, scene, sampler, ss, sensor,
                                                        active=True):
            import drjit as dr

            if self.replay is not None:
                return self.replay(scene, ss, active)
            radiance, wavelengths = super().eval_primary_silhouette_radiance_difference(
                scene, sampler, ss, sensor, active)
            dr.eval(ss, radiance, wavelengths)
            return radiance, wavelengths

    return StoredSilhouetteSamples


def store_silhouette_samples(integrator, store: bool = True) -> None:
    """Makes a projective integrator (``direct_projective``, ``prb_projective``) store its
    primary-silhouette samples (the points, their radiance differences) when it draws them
    (``store``), or go back to Mitsuba's own schedule.

    Left to Dr.Jit's lazy evaluation, the samples are computed twice per backward pass: once in
    the kernel that splats the silhouette term into its image and again in the adjoint kernel
    (each a ray test plus two shading evaluations per sample). Stored, both kernels read them.
    Same samples and gradients up to float rounding (tests). The cost is memory while the
    backward pass runs: 109 bytes a sample (4 MB at 96² × 4 spp; ``bench/render_backward.py``
    prints it per config with the time saved)."""
    from mitsuba.ad.projective import ProjectiveDetail

    kind = _stored_silhouettes_class() if store else ProjectiveDetail
    if type(integrator.proj_detail) is not kind:
        integrator.proj_detail = kind(integrator)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused while Dr.Jit records or replays a render.
    Mitsuba objects form reference cycles (a projective integrator and its helper refer to each
    other), so dropped scenes wait for the collector; collecting them inside a frozen function
    aborts the process ("Fatal Python error: Aborted" while garbage-collecting in
    ``mi.render`` under ``dr.freeze``). They are collected after the render instead."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _shading_adjoint(mi, dr, scene, grad_image, seed, spp: int) -> None:
    """The shading (continuous) term of a projective integrator's adjoint render at ``spp``
    samples per pixel: the gradient ``grad_image`` of its derivative image propagated into the
    scene's tracked variables. Mitsuba's ``render_backward`` computes this term together with
    the silhouette terms (``PSIntegrator.render_ad``), which refuses to be recorded as a whole;
    this is its continuous branch (the same samples, seeds and splatting), or ``RBIntegrator``'s
    adjoint for integrators with radiative backpropagation (``prb_projective``), so that it can
    be recorded. Added to the integrator's own adjoint with ``sppc = 0`` it gives Mitsuba's
    gradients (tests). Unlike Mitsuba's, it splats zeros that carry the samples' gradients
    rather than their radiance: the derivative image's value is never read, so no kernel
    computes it (Mitsuba's runs one that shades every sample only to splat it: tests,
    ``bench/render_backward.py``)."""
    from mitsuba.ad.integrators.common import ADIntegrator, RBIntegrator

    integrator = scene.integrator()
    sensor = scene.sensors()[0]
    if integrator.radiative_backprop:
        RBIntegrator.render_backward(integrator, scene, None, grad_image, sensor, seed, spp)
        return
    film = sensor.film()
    names = integrator.aov_names()
    with dr.suspend_grad():
        sampler, spp = integrator.prepare(sensor, seed, spp, names)
        ray, weight, pos = integrator.sample_rays(scene, sensor, sampler)
        radiance, valid, aovs, _ = integrator.sample(
            mode=dr.ADMode.Backward, scene=scene, sampler=sampler, ray=ray, depth=0, δL=None,
            state_in=None, active=mi.Bool(True), project=False, si_shade=None)
    # Zeros carrying the radiance's gradient: the splat and develop are linear in the value,
    # so the image's gradient does not depend on it, and nothing evaluates the radiance.
    value = dr.replace_grad(dr.zeros(mi.Spectrum, dr.width(radiance)), radiance * weight)
    block = film.create_block()
    block.set_coalesce(block.coalesce() and spp >= 4)
    ADIntegrator._splat_to_block(block, film, pos, value=value, weight=1.0,
                                 alpha=dr.select(valid, mi.Float(1), mi.Float(0)),
                                 aovs=[aov * weight for aov in aovs],
                                 wavelengths=ray.wavelengths)
    film.put_block(block)
    image = film.develop()
    dr.set_grad(image, grad_image)
    dr.enqueue(dr.ADMode.Backward, image)
    dr.traverse(dr.ADMode.Backward)


def _silhouette_radiance_difference(mi, dr, scene, ss, active, seed, spp: int):
    """(radiance, wavelengths) differences across the primary-silhouette samples ``ss`` of a
    projective integrator's adjoint at ``spp`` samples per pixel and gradient ``seed``: what
    ``ProjectiveDetail.eval_primary_silhouette_radiance_difference`` computes inside
    ``render_backward`` (its body, for the perspective camera lit3d builds), with the sampler
    seeded as it is there and advanced past the sample that drew ``ss``, so that it can be
    recorded apart from the silhouette sampling (whose edge distribution changes size every
    view)."""
    integrator = scene.integrator()
    sensor = scene.sensors()[0]
    with dr.suspend_grad():
        sampler, _ = integrator.prepare(sensor, 0xFFFFFFFF ^ seed, spp, integrator.aov_names())
        sampler.next_2d()  # the sample that drew the silhouette point
        # Is the silhouette point visible from the camera, and inside its frustum?
        sensor_center = sensor.world_transform() @ mi.Point3f(0)
        ss_invert = mi.SilhouetteSample3f(ss)
        ss_invert.d = -ss_invert.d
        ray_test = ss_invert.spawn_ray()
        ray_test.maxt = dr.norm(sensor_center - ray_test.o) * (1 - mi.math.ShadowEpsilon)
        visible = ~scene.ray_test(ray_test, active) & active
        it = dr.zeros(mi.Interaction3f)
        it.p = ss.p
        ds, _ = sensor.sample_direction(it, mi.Point2f(0), active)
        visible &= ds.pdf != 0
        wavelengths, weight = sensor.sample_wavelengths(
            dr.zeros(mi.SurfaceInteraction3f),
            sampler.next_1d() if mi.is_spectral else 0, active)
        radiance, _ = integrator.sample_radiance_difference(scene, ss, 0, sampler, wavelengths,
                                                            visible)
    return radiance * weight, wavelengths


class _Kernels:
    """The Dr.Jit computations of a render, recorded once and replayed (``dr.freeze``) when
    ``freeze``: the primal image, and the adjoint pass that turns an image gradient into
    gradients of the scene's tracked variables. Replaying skips Dr.Jit's tracing of the whole
    integrator (``bench/render_step.py``, ``prb`` at 64² × 16 spp: render + backward 32.7 ms
    traced, 19.1 ms replayed). Of a ``projective`` integrator's adjoint, the shading term
    (:func:`_shading_adjoint`) and the radiance differences across the primary-silhouette
    samples (:func:`_silhouette_radiance_difference`) are recorded; the silhouette sampling
    and splatting around the latter are traced every time. The
    arguments that change (scene state, seeds, image gradient) are Dr.Jit inputs; ``spp`` is a
    Python int, so each sample count gets its own recording (measured: the scene's first render
    records twice, as it creates the film's storage; then every call replays)."""

    def __init__(self, mi, dr, freeze: bool, projective: bool,
                 options: tuple[int | None, ...] = (None, None, None)):
        # ``threads`` (unused) keys the recordings on Dr.Jit's thread count: a recording
        # replayed after ``dr.set_thread_count`` changed it crashes (measured: segfault).
        def primal(scene, seed, spp: int, threads: int):
            return mi.render(scene, seed=seed, spp=spp)

        def adjoint(scene, grad_image, seed, spp: int, counts: tuple | None, threads: int):
            integrator = scene.integrator()
            if counts is not None:
                # spp=0 makes the projective integrator take its own per-term counts.
                integrator.sppc, integrator.sppp, integrator.sppi = counts
                spp = 0
            integrator.render_backward(scene, None, grad_image, seed=seed, spp=spp)

        def shading(scene, grad_image, seed, spp: int, threads: int):
            _shading_adjoint(mi, dr, scene, grad_image, seed, spp)

        def silhouette(scene, ss, active, seed, spp: int, threads: int):
            return _silhouette_radiance_difference(mi, dr, scene, ss, active, seed, spp)

        self.mi, self.dr = mi, dr
        self.projective = projective
        self.options = options  # the integrator's own (sppc, sppp, sppi); 0 turns a term off
        self._primal = dr.freeze(primal) if freeze else primal
        self._adjoint = dr.freeze(adjoint) if freeze and not projective else adjoint
        self._shading = dr.freeze(shading) if freeze and projective else None
        self._silhouette = dr.freeze(silhouette) if freeze and projective else None

    def primal(self, scene, seed, spp: int):
        """(H, W, 3) image of ``scene``."""
        with _collector_paused():
            return self._primal(scene, seed, spp, self.dr.thread_count())

    def adjoint(self, scene, grad_image, seed, spp: int, shading_spp: int | None = None,
                silhouette_spp: int | None = None, replay_shading: bool = True) -> None:
        """Accumulates ``grad_image``'s gradient into the scene's tracked variables
        (``shading_spp``, ``silhouette_spp``: see :class:`MitsubaRenderer`; ``replay_shading``
        False: a projective integrator's whole adjoint traced)."""
        threads = self.dr.thread_count()
        with _collector_paused():
            if not self.projective:
                self._adjoint(scene, grad_image, seed, spp, None, threads)
                return
            # Every call sets all three counts (a term the integrator's options switch off
            # stays off), so no call depends on what the one before left in the integrator.
            shading, silhouette, indirect = (
                0 if option == 0 else spp if wanted is None else min(wanted, spp)
                for option, wanted in zip(self.options, (shading_spp, silhouette_spp, None)))
            if self._shading is None or not replay_shading:
                self._adjoint(scene, grad_image, seed, spp, (shading, silhouette, indirect),
                              threads)
                return
            # The silhouette terms, traced around their replayed radiance differences; then the
            # shading term, replayed.
            detail = scene.integrator().proj_detail
            replaying = bool(silhouette) and isinstance(detail, _stored_silhouettes_class())
            if replaying:
                detail.replay = functools.partial(self._silhouette, seed=seed, spp=silhouette,
                                                  threads=threads)
            try:
                self._adjoint(scene, grad_image, seed, spp, (0, silhouette, indirect), threads)
            finally:
                if replaying:
                    detail.replay = None
            if shading:
                self._shading(scene, grad_image, seed, shading, threads)

    @property
    def recordings(self) -> tuple[int, int, int]:
        """How many times the (primal, adjoint, silhouette) computations were recorded (0 if
        not frozen; of a projective integrator's adjoint, its shading term and its silhouette
        samples' radiance differences; silhouette 0 for other integrators)."""
        adjoint = self._adjoint if self._shading is None else self._shading
        return tuple(getattr(f, "n_recordings", 0)
                     for f in (self._primal, adjoint, self._silhouette))

    def seeds(self, seed: int):
        """(primal seed, gradient seed) as ``mi.render`` derives them (decorrelated)."""
        mi, dr = self.mi, self.dr
        primal = dr.opaque(mi.UInt32, seed)  # an input of the recording, not a constant in it
        gradient = mi.UInt32(mi.sample_tea_32(primal, mi.UInt32(1))[0])
        dr.eval(gradient)
        return primal, gradient


class _ViewRender(torch.autograd.Function):
    """One view: the forward pass renders the primal image (no Dr.Jit AD graph); the backward
    pass runs the integrator's adjoint render with the gradient seed ``mi.render`` would use, so
    image and gradient equal ``mi.render``'s.

    The backward pass needs the view's scene state with the inputs tracked. When the forward
    pass was the renderer's last (one view a step), the scene still holds that state: the
    forward pass already tracked the inputs it handed over (``track``) and the backward pass
    reuses them, without setting the buffers again (which rebuilds the BVH and the normals).
    Otherwise (a batch of views, or other renders in between) it sets the view's camera, light
    and inputs again, and rebuilds the scene if a mesh of another topology was rendered in
    between, so every view gets exact gradients (Mitsuba's own backward re-renders with the
    scene as it is *then*: with one shared scene every view took the last view's camera)."""

    @staticmethod
    def forward(ctx, positions, colors, renderer, mi, dr, view, seed, spp, track, faces):
        ctx.renderer, ctx.mi, ctx.dr, ctx.view, ctx.seed, ctx.spp = (
            renderer, mi, dr, view, seed, spp)
        ctx.faces, ctx.topology = faces, renderer._faces_key
        ctx.save_for_backward(positions, colors)
        kernels = renderer._kernels
        renderer._set_view(mi, view)
        ctx.arrays = {"positions": renderer._set_buffer(mi, dr, renderer._positions_key,
                                                        positions, grad=track)}
        if colors is not None:
            ctx.arrays["colors"] = renderer._set_buffer(mi, dr, COLOR_KEY, colors, grad=track)
        ctx.state = renderer._state = object() if track else None
        primal_seed, _ = kernels.seeds(seed)
        image = kernels.primal(renderer._scene, primal_seed, spp)
        return to_torch(dr, image).to(positions.device)

    @staticmethod
    def backward(ctx, grad):
        positions, colors = ctx.saved_tensors
        renderer, mi, dr = ctx.renderer, ctx.mi, ctx.dr
        inputs = {"positions": (renderer._positions_key, positions, ctx.needs_input_grad[0]),
                  "colors": (COLOR_KEY, colors, ctx.needs_input_grad[1])}
        if ctx.state is not None and renderer._state is ctx.state:
            tracked = ctx.arrays  # the scene is as the forward pass left it, inputs tracked
        else:
            if renderer._faces_key != ctx.topology:  # another mesh was rendered in between
                renderer._build_scene(mi, dr, ctx.faces, int(positions.shape[-2]),
                                      colors is not None)
            renderer._set_view(mi, ctx.view)
            tracked = {name: renderer._set_buffer(mi, dr, key, values, grad=grad)
                       for name, (key, values, grad) in inputs.items() if values is not None}
        renderer._state = ctx.state = ctx.arrays = None
        if "projective" in renderer.integrator:
            store_silhouette_samples(renderer._scene.integrator(),
                                     renderer.store_silhouette_samples)
        _, gradient_seed = renderer._kernels.seeds(ctx.seed)
        grad_image = to_drjit(dr, mi, grad)
        renderer._kernels.adjoint(renderer._scene, grad_image, gradient_seed, ctx.spp,
                                  renderer.shading_spp, renderer.silhouette_spp,
                                  renderer.replay_shading_adjoint)
        grads = {}
        for name, array in tracked.items():
            _, source, grad_needed = inputs[name]
            if grad_needed:
                gradient = to_torch(dr, dr.grad(array)).reshape(source.shape)
                grads[name] = gradient.to(source.device, source.dtype)
            dr.disable_grad(array)
        return (grads.get("positions"), grads.get("colors"), None, None, None, None, None, None,
                None, None)


class MitsubaEnvironmentRenderer(MitsubaRenderer):
    """MRD's shape scene: one floating diffuse, untextured object lit only by an environment
    (seen directly behind it), no point light. Same contract and mesh handling as
    :class:`MitsubaRenderer`; the views' light fields are ignored.

    Args:
        environment: an :class:`~lit3d.render.environment.Environment` (procedural sky or an
            HDR/EXR file); default a :class:`~lit3d.render.environment.SunSky`.
        environment_resolution: height of the lat-long map handed to Mitsuba (width 2×).
        image_size, spp, integrator, integrator_options, albedo, freeze, silhouette_spp,
            shading_spp: as :class:`MitsubaRenderer`.
    """

    def __init__(self, environment: Environment | None = None,
                 environment_resolution: int = 128, image_size: int = 128,
                 spp: int = 16, integrator: str = "direct_projective",
                 integrator_options: dict[str, Any] | None = None, albedo: float = 0.8,
                 freeze: bool = True, silhouette_spp: int | None = None,
                 shading_spp: int | None = None):
        super().__init__(image_size=image_size, spp=spp, integrator=integrator,
                         integrator_options=integrator_options, albedo=albedo, background=0.0,
                         freeze=freeze, silhouette_spp=silhouette_spp, shading_spp=shading_spp)
        self.environment = default_environment(environment)
        self.environment_resolution = int(environment_resolution)

    def _emitters(self, mi) -> dict[str, Any]:
        return {"environment": envmap_emitter(mi, self.environment, self.environment_resolution)}
