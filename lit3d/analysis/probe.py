"""One look at a fitted 3D-MEI: the unit's response to its mesh in a chosen object pose, light
direction, samples per pixel and seed, with the image as the response model sees it.

The conventions are those of :mod:`lit3d.analysis.tuning` (object pose ``R_x(el) · R_z(az)``;
light on the camera's forward hemisphere) and of :mod:`lit3d.analysis.export` (the render seed
is the view's own seed, ``seed=[seed]``), so a probe equals the ``export`` entry of the same
pose, light, spp and seed: what ``lit3d explore`` shows is what ``export`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lit3d.analysis.tuning import hemisphere_positions, pose_rotations
from lit3d.data.views import Views
from lit3d.modules.mei3d import MEI3D


@dataclass(frozen=True)
class Look:
    """What a probe is of. Angles in degrees; ``light`` ``None`` keeps the view's light."""

    pose: tuple[float, float] = (0.0, 0.0)
    light: tuple[float, float] | None = None
    spp: int = 64
    seed: int = 0


@dataclass
class Probe:
    """The result of :func:`probe`.

    Attributes:
        image: (3, H, W) linear render.
        model_input: (C, h, w) the render after the response model's preprocessing.
        response: the unit's response; normalized: divided by its optimum (NaN if unknown).
        vertices: (V, 3) the mesh in the probed pose; view: the rendered view (light moved).
    """

    image: Tensor
    model_input: Tensor
    response: float
    normalized: float
    vertices: Tensor
    view: Views


def posed(vertices: Tensor, view: Views, look: Look) -> tuple[Tensor, Views]:
    """``(vertices (V, 3), view)`` of ``look``: the mesh rotated to its pose and the view's
    light moved to its direction (:mod:`lit3d.analysis.tuning`)."""
    rotation = pose_rotations(torch.tensor([float(look.pose[0])]),
                              torch.tensor([float(look.pose[1])]))[0].to(vertices)
    if look.light is not None:
        position = hemisphere_positions(view.to("cpu"), torch.tensor([float(look.light[0])]),
                                        torch.tensor([float(look.light[1])]))
        view = view.replace(light_position=position.to(view.light_position))
    return vertices.float() @ rotation.T, view


@torch.no_grad()
def probe(module: MEI3D, vertices: Tensor, faces: Tensor, view: Views, look: Look) -> Probe:
    """The unit of ``module`` (a :class:`~lit3d.modules.MEI3D`) probed with the mesh
    ``vertices`` (V, 3) / ``faces`` (F, 3) in ``view`` (one view) as ``look`` says."""
    moved, view = posed(vertices, view[:1], look)
    images = module.renderer(moved, faces, view, seed=[int(look.seed)], spp=int(look.spp),
                             colors=module.colors())
    model = module.response_model.eval()
    inputs = model.preprocess(images)
    response = model.respond(inputs)[0, int(module.hparams.neuron)]
    return Probe(image=images[0].cpu(), model_input=inputs[0].cpu(), response=float(response),
                 normalized=float(module.normalized(response)), vertices=moved, view=view)


def input_picture(inputs: Tensor, size: int | None = None) -> np.ndarray:
    """(h, w, 3) uint8 picture of a model input (C, h, w): zero is mid-grey and the largest
    magnitude black or white (one scale for all channels); one channel is shown as grey;
    ``size`` magnifies it (nearest neighbour) to about that width."""
    x = inputs.detach().float().cpu()
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
    scale = float(x.abs().max().clamp(min=1e-12))
    picture = ((0.5 + 0.5 * x / scale).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    picture = picture.permute(1, 2, 0).numpy()
    if size and size > picture.shape[1]:
        k = max(1, size // picture.shape[1])
        picture = picture.repeat(k, axis=0).repeat(k, axis=1)
    return np.ascontiguousarray(picture)


def render_picture(image: Tensor, size: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 sRGB picture of a linear render (3, H, W), magnified as
    :func:`input_picture`."""
    from lit3d.render.tonemap import srgb_encode

    rgb = srgb_encode(image.detach().float().cpu()).nan_to_num(0.0)
    picture = (rgb.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
    if size and size > picture.shape[1]:
        k = max(1, size // picture.shape[1])
        picture = picture.repeat(k, axis=0).repeat(k, axis=1)
    return np.ascontiguousarray(picture)
