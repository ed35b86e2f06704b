"""RBF validation on known shapes (3D-MEI paper, Fig. 3A): can the RBF deformation reach a
target shape? An initial mesh (ico-sphere, or a torus for genus-1 targets) is deformed by the
same :class:`~lit3d.geometry.rbf.RBFDeformation` 3D-MEI uses (a kernel at every vertex,
learnable offsets and scales) to minimize the Chamfer loss to a target mesh (procedural, e.g.
:class:`~lit3d.geometry.procedural.StarShape` / :class:`~lit3d.geometry.procedural.BumpyTorus`,
or any mesh file), with a small Laplacian term keeping the surface smooth.

The loss is the symmetric mean *squared* nearest-point distance between points sampled on the
deformed surface (fresh face/barycentric samples every step, differentiable in the vertices)
and a fixed sample of the target; the reported metric is
:func:`lit3d.metrics.chamfer.chamfer_distance` (mean distance over 20k samples each way,
divided by the target's bounding-box diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lit3d.console import progress
from lit3d.errors import InputError
from lit3d.geometry.mesh import Mesh
from lit3d.geometry.rbf import RBFDeformation
from lit3d.geometry.regularizers import laplacian_loss
from lit3d.geometry.remesh import mean_edge_length
from lit3d.geometry.topology import edges_from_faces
from lit3d.metrics.chamfer import chamfer_distance, sample_surface


def squared_nearest(a: Tensor, b: Tensor, chunk: int = 2048) -> Tensor:
    """(N,) squared distance from each point of ``a`` (N, 3) to its nearest point of ``b``
    (M, 3), differentiable in both (chunks of ``chunk`` rows)."""
    return torch.cat([torch.cdist(a[i:i + chunk], b).pow(2).min(dim=1).values
                      for i in range(0, a.shape[0], chunk)])


def chamfer_loss(points: Tensor, target_points: Tensor) -> Tensor:
    """Symmetric mean squared nearest-point distance of two point sets, world units²."""
    return 0.5 * (squared_nearest(points, target_points).mean()
                  + squared_nearest(target_points, points).mean())


@dataclass
class ChamferFit:
    """Result: the deformed ``mesh``, its normalized ``chamfer`` distance to the target and
    the loss after every step (``history``)."""

    mesh: Mesh
    chamfer: float
    history: list[float] = field(default_factory=list)


def fit_to_target(initial: Mesh, target: Mesh, steps: int = 150, lr: float = 2e-3,
                  sigma_edges: float = 2.0, lambda_lap: float = 1.0, num_points: int = 2000,
                  target_points: int = 5000, seed: int = 0) -> ChamferFit:
    """Deforms ``initial`` towards ``target`` with RBF kernels at every vertex (Adam on offsets
    and log-scales, cosine-decayed learning rate).

    Args:
        steps: optimizer steps. lr: Adam learning rate (world units per step per kernel).
        sigma_edges: initial kernel scale in mean edge lengths of ``initial`` (3D-MEI: 2).
        lambda_lap: weight of the uniform Laplacian regularizer.
        num_points: surface samples of the deformed mesh per step.
        target_points: surface samples of the target (drawn once).
        seed: seed of every sample.
    """
    if steps < 1 or lr <= 0:
        raise InputError("need steps >= 1 and lr > 0")
    g = torch.Generator().manual_seed(seed)
    faces = initial.faces.long()
    deformation = RBFDeformation(initial.vertices.float(),
                                 sigma_edges * mean_edge_length(initial.vertices, faces))
    edges = edges_from_faces(faces)
    with torch.no_grad():
        goal = sample_surface(target.vertices.float(), target.faces.long(), target_points, g)
    optimizer = torch.optim.Adam(deformation.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    history = []
    for _ in progress(range(steps), "fitting the RBF deformation"):
        optimizer.zero_grad()
        vertices = deformation()
        loss = chamfer_loss(sample_surface(vertices, faces, num_points, g), goal)
        total = loss + lambda_lap * laplacian_loss(vertices, edges)
        total.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
    with torch.no_grad():
        vertices = deformation().detach()
    return ChamferFit(Mesh(vertices, faces),
                      chamfer_distance(vertices, faces, target.vertices, target.faces.long()),
                      history)


def known_shape_pairs() -> dict[str, tuple[Mesh, Mesh]]:
    """The two known-shape validations of Fig. 3A, procedurally, as (initial, target) meshes:
    ``{"sphere_to_star": ..., "torus_to_bumpy_torus": ...}`` (genus 0 and genus 1)."""
    from lit3d.geometry.primitives import IcoSphere, Torus
    from lit3d.geometry.procedural import BumpyTorus, StarShape

    return {
        "sphere_to_star": (IcoSphere(3, 1.0).build(), StarShape(subdivisions=4).build()),
        "torus_to_bumpy_torus": (Torus(1.0, 0.4, 48, 24).build(), BumpyTorus().build()),
    }


def plot_fits(path, renders: dict[str, list[Tensor]], chamfer: dict[str, float]):
    """One row per fitted pair: the initial mesh, the RBF fit and the target, each (3, H, W)
    linear render in ``renders[name]``, titled, the row labelled with the pair's name and its
    normalized Chamfer distance."""
    from lit3d.figures import pyplot, save_figure
    from lit3d.render.tonemap import srgb_encode

    plt = pyplot()
    columns = ("initial mesh", "RBF fit", "target")
    fig, axes = plt.subplots(len(renders), 3, figsize=(7.5, 2.7 * len(renders) + 0.5),
                             squeeze=False)
    for row, (name, images) in enumerate(renders.items()):
        for col, image in enumerate(images):
            ax = axes[row][col]
            ax.imshow(srgb_encode(image.detach().cpu()).permute(1, 2, 0).numpy())
            ax.set_title(columns[col], fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(f"{name}\nChamfer {chamfer[name]:.4f}", fontsize=9)
    fig.suptitle("RBF deformation fitted to known shapes (normalized Chamfer distance)",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
