"""``MRDShape``: reconstruct a target's geometry from its renders (MRD paper, sec. 2.3-2.6).

The mesh's vertices are optimized in Large Steps' differential coordinates with uniform Adam;
each training step renders one (or a few) of the Fibonacci-lattice views with a fresh seed and
compares it with the target's render of the same view: pixel MAE (the baseline run) or the
dissimilarity of a vision network's latents (the metamer run), the network seeing
``sRGB(Reinhard(render))``. Every epoch the validation loop renders all views and logs the
network's hypersphere similarity and Kendall RSA to the target's; the run's ``summary.json``
applies the metamer criterion against a baseline run's summary
(:mod:`lit3d.metrics.metamer`). Remeshing, the learning-rate decay after it and early stopping
are callbacks (:mod:`callbacks.remesh`, :mod:`callbacks.early_stopping`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.geometry.largesteps import LargeSteps, UniformAdam
from lit3d.geometry.mesh import Mesh, validate_mesh
from lit3d.geometry.primitives import IcoSphere, MeshSource
from lit3d.losses import latent_loss, pixel_mae
from lit3d.metrics.chamfer import surface_distances
from lit3d.modules.mrd_base import TARGET_SEED, MRDReconstruction, check_reconstruction_args
from lit3d.render.base import Renderer, Seed


class MRDShape(MRDReconstruction):
    """Shape reconstruction of a target mesh (see the module docstring).

    Args:
        target: the target mesh source (``MeshFile`` path/URL, or a procedural shape such as
            :class:`~lit3d.geometry.procedural.StarShape`).
        initial: the starting mesh (default an ico-sphere of radius 1, 642 vertices).
        renderer: default :class:`~lit3d.render.mitsuba.MitsubaEnvironmentRenderer` (diffuse
            object under a procedural sun and sky, ``direct_projective``).
        loss: ``"pixel"`` (MAE of linear renders; the baseline) or ``"latent"`` (through
            ``model``).
        model: a zoo :class:`~lit3d.models.zoo.VisionModel`; required for ``loss="latent"``;
            with the pixel loss it measures the similarity the metamer criterion uses.
        lambda_: Large Steps λ (MRD's dragon: 15).
        lr: uniform-Adam learning rate (MRD's dragon: 0.1).
        target_spp: samples per pixel of the target renders (made once at the start).
        eval_spp: samples per pixel of validation and final renders.
        baseline: path of a pixel-baseline run's ``summary.json`` (or its log dir): the
            metamer criterion's bar. ``None``: ``metamer`` is ``null`` in the summary.
        similarity_models: more networks (zoo :class:`~lit3d.models.zoo.VisionModel`) that
            score every validation (similarity, RSA) but never enter the loss: one pixel
            baseline then holds the bar for each of them (``summary.json``'s ``networks``).
        chamfer_points: surface samples per mesh for the final Chamfer distance.
    """

    #: The metric ``FitArtifacts`` prints as the run's last line.
    headline_metric = "chamfer"
    #: Printed after it: the largest deviation, which a filled-in concavity sets.
    headline_extras = ("hausdorff",)

    def __init__(
        self,
        target: MeshSource,
        initial: MeshSource | None = None,
        renderer: Renderer | None = None,
        loss: Literal["pixel", "latent"] = "pixel",
        model: torch.nn.Module | None = None,
        lambda_: float = 15.0,
        lr: float = 0.1,
        target_spp: int = 64,
        eval_spp: int = 32,
        baseline: str | None = None,
        similarity_models: list[torch.nn.Module] | None = None,
        chamfer_points: int = 20000,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["target", "initial", "renderer", "model",
                                          "similarity_models"])
        check_reconstruction_args(loss, model, lr, target_spp, eval_spp)
        if lambda_ < 0:
            raise ValueError(f"the Large Steps lambda_ must be >= 0, got {lambda_}")
        if renderer is None:
            from lit3d.render.mitsuba import MitsubaEnvironmentRenderer

            renderer = MitsubaEnvironmentRenderer()
        self.renderer = renderer
        self.setup_evaluation(model, baseline, similarity_models)
        target_mesh = target.build()
        validate_mesh(target_mesh.vertices, target_mesh.faces, name="target mesh")
        self.register_buffer("target_vertices", target_mesh.vertices.float())
        self.register_buffer("target_faces", target_mesh.faces.long())
        start = (initial or IcoSphere(subdivisions=3, radius=1.0)).build()
        validate_mesh(start.vertices, start.faces, name="initial mesh")
        self.shape = LargeSteps(start.vertices.float(), start.faces, lambda_)
        self.register_buffer("lr_scale", torch.tensor(1.0))  # decayed by DecayLROnRemesh
        self.remesh_count = 0

    # -- the mesh ------------------------------------------------------------------------------
    @property
    def faces(self) -> Tensor:
        return self.shape.faces

    def vertices(self) -> Tensor:
        """(V, 3) current vertices, world units (differentiable in the Large Steps ``u``)."""
        return self.shape()

    def current_mesh(self) -> Mesh:
        return Mesh(self.vertices().detach(), self.faces)

    def set_mesh(self, vertices: Tensor, faces: Tensor) -> None:
        """Replaces the mesh (e.g. after remeshing): a new Large Steps parameterization of the
        given topology. The caller rebuilds the optimizer (:class:`callbacks.Remesh` does)."""
        validate_mesh(vertices, faces, name="new mesh")
        self.shape = LargeSteps(vertices.detach().float(), faces.long(),
                                self.hparams.lambda_).to(self.target_vertices.device)

    def snapshot(self) -> dict[str, Tensor]:
        """Copies of the mesh (vertices, faces), for :meth:`restore` (early stopping)."""
        vertices, faces = self.current_mesh()
        return {"vertices": vertices.detach().clone(), "faces": faces.clone()}

    def restore(self, snapshot: dict[str, Tensor]) -> None:
        self.set_mesh(snapshot["vertices"].to(self.device), snapshot["faces"].to(self.device))

    # -- rendering ----------------------------------------------------------------------------
    def render(self, vertices: Tensor, faces: Tensor, views: Views, seed: Seed,
               spp: int | None = None) -> Tensor:
        """(B, 3, H, W) linear renders of one mesh in ``views``."""
        return self.renderer(vertices, faces, views, seed=seed, spp=spp)

    def render_target(self, views: Views, seed: Seed, spp: int | None = None) -> Tensor:
        return self.render(self.target_vertices, self.target_faces, views, seed, spp)

    def render_current(self, views: Views, seed: Seed, spp: int | None = None) -> Tensor:
        return self.render(self.vertices(), self.faces, views, seed, spp)

    @torch.no_grad()
    def vertex_objective(self, views: Views):
        """``loss(vertices, seed, spp)``: the configured loss (pixel MAE or the network's
        latent loss) of renders of ``views`` against the target's, rendered once here
        (:class:`~lit3d.modules.protocols.VertexObjective`)."""
        views = views.to(self.device)
        targets = self.render_target(views, seed=TARGET_SEED, spp=self.hparams.target_spp)
        latents = self._latents(targets) if self.hparams.loss == "latent" else None

        def loss(vertices: Tensor, seed: int, spp: int | None = None) -> Tensor:
            images = self.render(vertices, self.faces, views, seed=seed, spp=spp)
            if latents is None:
                return pixel_mae(images, targets)
            return latent_loss(self.model, images, latents)

        return loss

    # -- training ------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Views], batch_idx: int) -> Tensor | None:
        index, views = batch
        images = self.render(self.vertices(), self.faces, views, seed=self.step_seeds(index))
        if self.hparams.loss == "pixel":
            loss = pixel_mae(images, self._targets[index])
        else:
            loss = latent_loss(self.model, images, self._target_latents[index])
        if not torch.isfinite(loss):
            # Returned all the same (returning None would hang DDP): callbacks.SkipNonFinite
            # drops this step's gradients on every rank.
            return loss
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(index), sync_dist=True)  # ranks agree (early stopping)
        self.log("train/num_vertices", float(self.shape.num_vertices), on_step=False,
                 on_epoch=True, batch_size=len(index))
        return loss

    def configure_optimizers(self):
        return UniformAdam(self.shape.parameters(), lr=self.hparams.lr * float(self.lr_scale))

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def final_evaluation(self) -> dict[str, Any]:
        """Chamfer and Hausdorff distances to the target (normalized by its bounding-box
        diagonal), the summary, and a grid image: top row renders, bottom row targets (first 4
        views)."""
        vertices = self.vertices()
        results: dict[str, Any] = {
            **surface_distances(vertices, self.faces, self.target_vertices,
                                self.target_faces, self.hparams.chamfer_points),
            "num_vertices": int(vertices.shape[0]),
            "num_faces": int(self.faces.shape[0]),
            "remeshes": int(self.remesh_count),
        }
        summary = self.summary()
        summary["chamfer"], summary["hausdorff"] = results["chamfer"], results["hausdorff"]
        results["summary"] = summary
        if self._trainer is not None:
            results.update(self.preview_figure())
        return results

    # -- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds the history; leaves out the frozen network's weights (rebuilt from the config,
        which the CLI checks is the same on resume: a ResNet-50 would add 100 MB a file)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["mrd_remesh_count"] = self.remesh_count

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores the history and rebuilds the Large Steps parameterization with the
        checkpoint's topology (a remeshed run has other vertex and face counts)."""
        super().on_load_checkpoint(checkpoint)
        self.remesh_count = checkpoint.get("mrd_remesh_count", 0)
        self._match_topology(checkpoint["state_dict"])

    def _match_topology(self, state: dict[str, Tensor]) -> None:
        """Rebuilds the Large Steps parameterization with the topology of ``state`` (a state
        dict of a remeshed run) when it differs from the current one."""
        faces, u = state.get("shape.faces"), state.get("shape.u")
        if faces is None or u is None:
            return
        if faces.shape != self.faces.shape or u.shape != self.shape.u.shape:
            self.shape = LargeSteps(torch.zeros_like(u), faces, self.hparams.lambda_).to(
                self.target_vertices.device)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that first adopts the state's mesh topology (after
        remeshing, e.g. the state rank 0 hands back at the end of a ``ddp_spawn`` fit)."""
        self._match_topology(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
