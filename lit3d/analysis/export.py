"""Stimulus export for experiments: the mesh, renders at a chosen resolution, and a JSON sidecar
from which every render can be made again.

:func:`export_stimulus` writes into a folder

- ``mesh.obj``, ``mesh.ply``, ``mesh.glb`` (the stimulus in its fitted pose, world units),
- ``renders/render_NNN.png`` (sRGB, 8 bit) for each requested (pose, light),
- ``stimulus.json``: the renderer (class and constructor arguments, its ``spp`` the one the
  renders used), and for every render its file, pose (azimuth/elevation of
  :func:`lit3d.analysis.tuning.pose_rotations`, and the rotation matrix), the full view (camera,
  field of view, light position and intensity), seed, samples per pixel, the PNG's SHA-256 and,
  given the response model, the unit's response to it (and the normalized response where the
  unit's optimum is known).

:func:`rerender` rebuilds the renderer from the sidecar, loads the mesh and renders every entry
again (the test checks the PNGs come out byte-identical).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from lit3d.analysis.tuning import hemisphere_positions, pose_rotations
from lit3d.console import progress
from lit3d.data.views import Views
from lit3d.errors import InputError
from lit3d.render.base import Renderer

SIDECAR = "stimulus.json"
MESH_FORMATS = ("obj", "ply", "glb")


def renderer_spec(renderer: Renderer) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of a renderer: its constructor's arguments read back from
    its attributes. Raises ``ValueError`` if one is not JSON-serializable (e.g. an
    environment object), since the sidecar could not rebuild it."""
    cls = type(renderer)
    init_args = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if not hasattr(renderer, name):
            continue
        value = getattr(renderer, name)
        try:
            json.dumps(value)
        except TypeError:
            raise InputError(f"cannot export {cls.__name__}: its argument {name!r} "
                             f"({type(value).__name__}) is not JSON-serializable") from None
        init_args[name] = value
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


def build_renderer(spec: dict[str, Any]) -> Renderer:
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**spec["init_args"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _render_entry(renderer: Renderer, vertices: Tensor, faces: Tensor, entry: dict[str, Any]
                  ) -> Tensor:
    """(3, H, W) linear render of one sidecar entry."""
    rotation = torch.tensor(entry["rotation"], dtype=torch.float32)
    view = Views(**{k: torch.tensor([v], dtype=torch.float32) for k, v in entry["view"].items()})
    with torch.no_grad():
        return renderer(vertices.float() @ rotation.T, faces, view, seed=[entry["seed"]],
                        spp=entry["spp"])[0]


def export_stimulus(out: str | Path, vertices: Tensor, faces: Tensor, renderer: Renderer,
                    view: Views, poses: Sequence[tuple[float, float]] = ((0.0, 0.0),),
                    lights: Sequence[tuple[float, float]] | None = None, spp: int = 64,
                    seed: int = 0, extra: dict[str, Any] | None = None,
                    response: Callable[[Tensor], Tensor] | None = None,
                    optimum: float | None = None) -> Path:
    """Writes the stimulus folder (module docstring); returns the sidecar's path.

    Args:
        vertices, faces: (V, 3) world units, (F, 3) the fitted mesh.
        renderer: renders the images (its ``image_size`` sets their resolution).
        view: the base view (one), e.g. the fit's overhead view.
        poses: (azimuth, elevation) object rotations, degrees.
        lights: (azimuth, elevation) light directions on the camera's forward hemisphere
            (:func:`lit3d.analysis.tuning.light_directions`); ``None`` keeps the view's light.
            Every pose is rendered with every light.
        spp, seed: samples per pixel and base seed (render ``i`` uses ``seed + i``).
        extra: more JSON fields for the sidecar (e.g. the unit).
        response: (B, 3, H, W) renders -> (B,) the unit's responses, recorded per render.
        optimum: the unit's response to its optimal image, for ``normalized_response``.
    """
    from lit3d.geometry.io import save_mesh
    from lit3d.images import save_image

    if len(view) != 1:
        raise InputError(f"export takes one base view, got {len(view)}")
    out = Path(out)
    (out / "renders").mkdir(parents=True, exist_ok=True)
    meshes = {fmt: save_mesh(out / f"mesh.{fmt}", vertices.detach().cpu(), faces.cpu()).name
              for fmt in MESH_FORMATS}
    if lights is None:
        light_positions = [(None, view.light_position[0])]
    else:
        azimuths = torch.tensor([a for a, _ in lights]).float()
        positions = hemisphere_positions(view.to("cpu"), azimuths,
                                         torch.tensor([e for _, e in lights]).float())
        light_positions = list(zip(lights, positions))
    base = view.as_dicts()[0]
    entries = []
    for pose in progress(poses, f"rendering {len(poses)} pose(s)"):
        rotation = pose_rotations(torch.tensor([float(pose[0])]), torch.tensor([float(pose[1])]))[0]
        for light, position in light_positions:
            index = len(entries)
            entry = {
                "file": f"renders/render_{index:03d}.png",
                "pose_deg": {"azimuth": float(pose[0]), "elevation": float(pose[1])},
                "light_deg": (None if light is None else
                              {"azimuth": float(light[0]), "elevation": float(light[1])}),
                "rotation": rotation.tolist(),
                "view": {**base, "light_position": position.tolist()},
                "seed": int(seed) + index,
                "spp": int(spp),
            }
            image = _render_entry(renderer, vertices.detach().cpu(), faces.cpu(), entry)
            path = save_image(out / entry["file"], image)
            entry["sha256"] = _sha256(path)
            if response is not None:
                with torch.no_grad():
                    entry["response"] = float(response(image[None])[0])
                if optimum is not None:
                    entry["normalized_response"] = entry["response"] / optimum
            entries.append(entry)
    sidecar = {
        "meshes": meshes,
        "units": "world units; angles in degrees; images sRGB 8-bit of linear radiance",
        "renderer": renderer_spec(renderer),
        "renders": entries,
        **(extra or {}),
    }
    path = out / SIDECAR
    path.write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def export_unit(out: str | Path, module, vertices: Tensor, faces: Tensor, view: Views,
                poses: Sequence[tuple[float, float]] = ((0.0, 0.0),),
                lights: Sequence[tuple[float, float]] | None = None, spp: int = 64,
                seed: int = 0, source: dict[str, Any] | None = None,
                image_size: int | None = None, allow_self_intersections: bool = False) -> Path:
    """:func:`export_stimulus` of a 3D-MEI unit's stimulus: ``module`` (a
    :class:`~lit3d.modules.MEI3D`) gives the renderer (at ``image_size``, default its own),
    the response and the optimum; the sidecar also records the unit, the mesh's plausibility
    measures and ``source`` (e.g. the run). A mesh that passes through itself is refused
    (:class:`InputError`) unless ``allow_self_intersections``."""
    import copy

    from lit3d.metrics.plausibility import plausibility

    rest = module.rest_vertices if module.rest_vertices.shape == vertices.shape else None
    measures = plausibility(vertices, faces, rest, view)
    if measures["self_intersections"] > 0 and not allow_self_intersections:
        raise InputError(
            f"the stimulus passes through itself ({measures['self_intersections']:.1%} of its "
            "faces intersect others): not a physical object; --allow-self-intersections "
            "exports it anyway")
    renderer = copy.deepcopy(module.renderer)
    renderer.spp = int(spp)  # the sidecar records the samples the renders used
    if image_size is not None:
        renderer.image_size = int(image_size)
    neuron = int(module.hparams.neuron)
    model = module.response_model.eval()
    optimum = float(module.optimal_response)
    extra = {**(source or {}), "neuron": neuron, "plausibility": measures}
    return export_stimulus(out, vertices, faces, renderer, view, poses, lights, spp=spp,
                           seed=seed, extra=extra,
                           response=lambda images: model(images)[:, neuron],
                           optimum=optimum if optimum == optimum else None)


def rerender(sidecar: str | Path, out: str | Path) -> list[Path]:
    """Renders every entry of ``sidecar`` again from its mesh (``mesh.ply``) into ``out``
    (same file names); returns the written PNGs."""
    from lit3d.geometry.io import load_mesh
    from lit3d.images import save_image

    sidecar = Path(sidecar)
    spec = json.loads(sidecar.read_text())
    vertices, faces = load_mesh(sidecar.parent / spec["meshes"]["ply"])
    renderer = build_renderer(spec["renderer"])
    out = Path(out)
    written = []
    for entry in spec["renders"]:
        image = _render_entry(renderer, vertices, faces, entry)
        target = out / entry["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(save_image(target, image))
    return written
