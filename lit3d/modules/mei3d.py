"""``MEI3D``: deform a mesh so that a modeled neuron's response to its render is maximal.

Loss (3D-MEI paper, eq. in Methods): ``-f(R(M)) + λ_lap L_lap + λ_edge L_edge + λ_area L_area
+ λ_arap L_arap`` (plus, optionally, ``λ_repulsion`` × a barrier between parts of the surface
that approach each other), minimized with Adam over the RBF offsets and scales (or free vertex
offsets). Every step is then undone where it would make the surface pass through itself or grow
beyond ``max_area_ratio`` (:mod:`lit3d.geometry.feasibility`), so the stimulus stays an object
that could be made. The module only composes: geometry (:mod:`lit3d.geometry`), renderer
(:mod:`lit3d.render`), response model (:mod:`lit3d.models`) and plausibility measures
(:mod:`lit3d.metrics.plausibility`), each owning its own idea.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor

from lit3d.data.views import Views, overhead_views
from lit3d.geometry.colors import VertexColors, color_smoothness
from lit3d.geometry.feasibility import Admissible, forget_undone, keep_admissible
from lit3d.geometry.mesh import Mesh, validate_mesh
from lit3d.geometry.primitives import MeshSource, Sheet
from lit3d.geometry.rbf import RBFDeformation, VertexOffsets
from lit3d.geometry.regularizers import (
    arap_direction_loss,
    edge_length_loss,
    edge_lengths,
    face_area_loss,
    laplacian_loss,
)
from lit3d.geometry.repulsion import repulsion_energy
from lit3d.geometry.topology import boundary_vertices, edges_from_faces, vertex_normals
from lit3d.metrics.plausibility import plausibility
from lit3d.models.base import ResponseModel
from lit3d.render.base import Renderer

REGULARIZERS = ("lap", "edge", "area", "arap")


class MEI3D(pl.LightningModule):
    """3D maximally exciting input of one unit of a response model.

    Args:
        response_model: the model whose unit ``neuron`` is maximized (e.g. a simulated cell).
        renderer: differentiable renderer (default :class:`~lit3d.render.mitsuba.MitsubaRenderer`).
        mesh: initial mesh source (:class:`~lit3d.geometry.primitives.Sheet`, ``IcoSphere``,
            ``MeshFile``).
        neuron: index of the unit to maximize.
        deformation: ``"rbf"`` (offsets δ_k and scales σ_k of a Gaussian kernel at every vertex)
            or ``"vertex"`` (free per-vertex offsets).
        rbf_sigma: initial σ_k, in units of the initial mesh's mean edge length.
        init_noise: std of the random initial offsets, in mean edge lengths (seeds differ).
            The offsets point along the initial mesh's normals, so a smooth initial mesh stays
            free of self-intersections (3D offsets of 0.5 edge lengths, σ = 3, pierced 10% of
            a sheet's faces, measured).
        lambda_lap, lambda_edge, lambda_area, lambda_arap: regularizer weights (>= 0).
        lr: Adam learning rate of the offsets (world units per step, roughly).
        lr_sigma: Adam learning rate of log σ (defaults to ``lr``).
        lr_decay: ``"cosine"`` anneals the learning rates to 5% over the run's steps (Adam at a
            constant rate keeps jittering around the optimum), ``"none"`` keeps them constant.
        lr_warmup: steps over which the learning rates ramp up linearly before the decay.
        eval_spp: samples per pixel of validation / final renders.
        restore_best: at the end of ``fit``, go back to the parameters of the training step
            with the highest response (a late fold of the mesh over the receptive field can
            lose what was found); the final artifacts then show that mesh.
        collapse_fraction, collapse_patience: rollback on collapse. When the training response
            stays below ``collapse_fraction`` × the best response so far for
            ``collapse_patience`` consecutive steps, the parameters go back to the best step,
            Adam's moments are reset and the learning rates halve (a trust-region back-off).
            Measured need: with an energy-model cell a runaway fold can drive the response to 0,
            where its gradient vanishes too, so the run never recovers on its own. Keep the
            fraction small: early responses are noisy and legitimately swing by 2-5x (at 0.5
            a CI run rolled back six times and stalled at 0.45). ``collapse_fraction=0``
            disables it.
        optimizer: ``"adam"`` (the paper's), or ``"uniform_adam"`` (Nicolet et al. 2021: every
            step divided by the largest second-moment root, so weakly driven vertices, e.g.
            outside the receptive field, move proportionally less).
        color: also optimize a per-vertex albedo (:class:`~lit3d.geometry.colors.VertexColors`,
            starting at the renderer's albedo), the paper's appearance extension; the final
            metrics then add ``normalized_response_shape_only`` (the same mesh rendered with
            the uniform albedo) for comparison.
        lr_color: Adam learning rate of the colour logits.
        lambda_color: weight of the colour field's smoothness (uniform Laplacian of colours).
        prevent_self_intersections: after every optimizer step, undo the step where the mesh
            it makes has faces passing through others (the kernels that reach them, then, if
            that is not enough, the whole step halved; Adam's moments of the undone entries
            reset), so the stimulus stays a surface that could exist
            (:func:`~lit3d.geometry.feasibility.keep_admissible`). The initial mesh's own
            self-intersections, if any, are tolerated, new ones are not.
        max_area_ratio: the same undoing keeps the surface area at most this multiple of the
            initial mesh's (``None``: unbounded growth).
        backtrack_halvings: how many halvings of a step are tried when undoing it locally does
            not suffice.
        lambda_repulsion: weight of the repulsion barrier between parts of the surface that
            approach each other (:mod:`lit3d.geometry.repulsion`): it keeps folds and pleats
            open, so fewer steps need undoing.
        repulsion_distance: the barrier's range, in mean edge lengths of the initial mesh.
        hold_boundary: keep the boundary vertices of an open initial mesh (a sheet's rim) where
            they are, like a relief on a fixed frame.
    """

    #: The metric ``FitArtifacts`` prints as the run's last line.
    headline_metric = "normalized_response"
    #: Printed after it on the same line: the stimulus' physical plausibility.
    headline_extras = ("self_intersections", "area_ratio")

    def __init__(
        self,
        response_model: ResponseModel,
        renderer: Renderer | None = None,
        mesh: MeshSource | None = None,
        neuron: int = 0,
        deformation: Literal["rbf", "vertex"] = "rbf",
        rbf_sigma: float = 2.0,
        init_noise: float = 0.0,
        lambda_lap: float = 0.0,
        lambda_edge: float = 0.0,
        lambda_area: float = 0.0,
        lambda_arap: float = 0.0,
        lr: float = 0.01,
        lr_sigma: float | None = None,
        lr_decay: Literal["cosine", "none"] = "cosine",
        lr_warmup: int = 0,
        eval_spp: int = 64,
        restore_best: bool = True,
        collapse_fraction: float = 0.1,
        collapse_patience: int = 10,
        optimizer: Literal["adam", "uniform_adam"] = "adam",
        color: bool = False,
        lr_color: float = 0.05,
        lambda_color: float = 0.1,
        prevent_self_intersections: bool = True,
        max_area_ratio: float | None = 3.0,
        backtrack_halvings: int = 4,
        lambda_repulsion: float = 0.0,
        repulsion_distance: float = 2.0,
        hold_boundary: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["response_model", "renderer", "mesh"])
        for name in REGULARIZERS:
            value = getattr(self.hparams, f"lambda_{name}")
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"lambda_{name} must be a finite number >= 0, got {value}")
        for name in ("lambda_color", "lambda_repulsion"):
            value = getattr(self.hparams, name)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if max_area_ratio is not None and not max_area_ratio > 1:
            raise ValueError(f"max_area_ratio must be > 1 (or null), got {max_area_ratio}")
        if backtrack_halvings < 0 or not repulsion_distance > 0:
            raise ValueError(f"need backtrack_halvings >= 0 and repulsion_distance > 0, got "
                             f"{backtrack_halvings}, {repulsion_distance}")
        if lr <= 0 or (lr_sigma is not None and lr_sigma <= 0) or lr_color <= 0:
            raise ValueError("learning rates must be > 0")
        if rbf_sigma <= 0 or init_noise < 0 or eval_spp < 1:
            raise ValueError(
                f"need rbf_sigma > 0, init_noise >= 0 and eval_spp >= 1; got {rbf_sigma}, "
                f"{init_noise}, {eval_spp}"
            )
        if not 0 <= neuron < response_model.num_outputs:
            raise ValueError(
                f"neuron {neuron} out of range: the response model has "
                f"{response_model.num_outputs} unit(s)"
            )
        if not 0 <= collapse_fraction < 1 or collapse_patience < 1:
            raise ValueError(f"need 0 <= collapse_fraction < 1 and collapse_patience >= 1, got "
                             f"{collapse_fraction}, {collapse_patience}")
        if optimizer not in ("adam", "uniform_adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; use 'adam' or 'uniform_adam'")
        if lr_warmup < 0:
            raise ValueError(f"lr_warmup must be >= 0 steps, got {lr_warmup}")
        if lr_decay not in ("cosine", "none"):
            raise ValueError(f"unknown lr_decay {lr_decay!r}; use 'cosine' or 'none'")
        if deformation not in ("rbf", "vertex"):
            raise ValueError(f"unknown deformation {deformation!r}; use 'rbf' or 'vertex'")
        if renderer is None:
            from lit3d.render.mitsuba import MitsubaRenderer

            renderer = MitsubaRenderer()
        self.response_model = response_model
        self.renderer = renderer
        rest = (mesh or Sheet()).build()
        validate_mesh(rest.vertices, rest.faces, name="initial mesh")
        edges = edges_from_faces(rest.faces)
        self.register_buffer("faces", rest.faces)
        self.register_buffer("edges", edges)
        scale = float(edge_lengths(rest.vertices, edges).mean())
        self.mean_edge_length = scale
        moving = torch.ones(rest.vertices.shape[0], 1)
        if hold_boundary:
            moving[boundary_vertices(rest.faces, rest.vertices.shape[0])] = 0.0
        self.register_buffer("moving", moving, persistent=False)
        self._admissible: Admissible | None = None
        if deformation == "rbf":
            self.deformation = RBFDeformation(rest.vertices, sigma=rbf_sigma * scale,
                                              offset_std=init_noise * scale)
        else:
            self.deformation = VertexOffsets(rest.vertices, offset_std=init_noise * scale)
        if init_noise > 0:
            normals = vertex_normals(rest.vertices, rest.faces)
            with torch.no_grad():
                offsets = self.deformation.offsets
                offsets.copy_((offsets * normals).sum(-1, keepdim=True) * normals)
        self.color = (VertexColors(rest.vertices.shape[0], getattr(renderer, "albedo", 0.8))
                      if color else None)
        # Per-run offset of the render seeds: fresh noise every step, different for every seed.
        self.register_buffer("render_seed", torch.randint(0, 2**31 - 1, ()))
        self.register_buffer("best_response", torch.tensor(float("-inf")))
        #: Copy of the stimulus parameters of the best training response (``restore_best``).
        self.best_state: dict[str, Tensor] | None = None
        self.register_buffer("lr_scale", torch.tensor(1.0))  # halved by each rollback
        self._steps_below = 0
        self.rollbacks = 0
        optimum = self._optimal_response()
        self.register_buffer("optimal_response", optimum if optimum is not None
                             else torch.tensor(float("nan")))

    # -- pieces --------------------------------------------------------------------------------
    @torch.no_grad()
    def _optimal_response(self) -> Tensor | None:
        images = self.response_model.optimal_images()
        if images is None:
            return None
        response = self.response_model(images)  # (N, N): unit n's response to optimum m
        return response[self.hparams.neuron, self.hparams.neuron].detach().clone()

    @property
    def rest_vertices(self) -> Tensor:
        return self.deformation.rest_vertices

    def vertices(self) -> Tensor:
        """(V, 3) current deformed vertices, world units (the rim kept in place with
        ``hold_boundary``)."""
        if self.hparams.hold_boundary:
            return self.rest_vertices + self.moving * self.deformation.displacement()
        return self.deformation()

    def current_mesh(self) -> Mesh:
        return Mesh(self.vertices().detach(), self.faces)

    def colors(self) -> Tensor | None:
        """(V, 3) current per-vertex albedo when ``color`` is on, else ``None`` (uniform)."""
        return None if self.color is None else self.color()

    def regularizers(self, vertices: Tensor) -> dict[str, Tensor]:
        """The four Appendix-B regularizers of ``vertices`` (V, 3), each a scalar, with
        ``lambda_repulsion > 0`` the repulsion barrier (``"repulsion"``), and with ``color`` on
        the colour field's smoothness (``"color"``)."""
        regs = {
            "lap": laplacian_loss(vertices, self.edges),
            "edge": edge_length_loss(vertices, self.edges),
            "area": face_area_loss(vertices, self.faces),
            "arap": arap_direction_loss(vertices, self.rest_vertices, self.edges),
        }
        if self.hparams.lambda_repulsion > 0:
            d = self.hparams.repulsion_distance * self.mean_edge_length
            regs["repulsion"] = repulsion_energy(vertices, self.rest_vertices, d)
        if self.color is not None:
            regs["color"] = color_smoothness(self.colors(), self.edges)
        return regs

    def respond(self, vertices: Tensor, views: Views, seed: int, spp: int | None = None,
                shape_only: bool = False) -> tuple[Tensor, Tensor]:
        """Renders ``views`` and returns ``(images (B, 3, H, W), responses (B,))`` of the unit
        (with the learned colours unless ``shape_only``)."""
        colors = None if shape_only else self.colors()
        images = self.renderer(vertices, self.faces, views, seed=seed, spp=spp, colors=colors)
        return images, self.response_model(images)[:, self.hparams.neuron]

    def vertex_objective(self, views: Views):
        """``loss(vertices, seed, spp)``: minus the unit's mean response to renders of
        ``views`` (with the learned colours) - the objective without its regularizers
        (:class:`~lit3d.modules.protocols.VertexObjective`)."""
        def loss(vertices: Tensor, seed: int, spp: int | None = None) -> Tensor:
            return -self.respond(vertices, views, seed=seed, spp=spp)[1].mean()

        return loss

    def normalized(self, response: Tensor) -> Tensor:
        """Response divided by the unit's response to its own optimal image (NaN if unknown)."""
        return response / self.optimal_response

    def step_seed(self, step: int) -> int:
        """Render seed of training step ``step``: fresh noise every step, different per run."""
        return (int(self.render_seed) + 7919 * int(step)) % (2**31 - 1)

    def _step_seed(self) -> int:
        return self.step_seed(int(self.global_step))

    def objective(self, views: Views, seed: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """One step's ``(loss, response, regularizers)`` (scalars): the mean response of the
        unit to ``views`` rendered with ``seed``, and the weighted loss. No logging, no
        collectives: :class:`~lit3d.modules.mei3d_population.MEI3DPopulation` reuses it."""
        vertices = self.vertices()
        _, responses = self.respond(vertices, views, seed=seed)
        response = responses.mean()
        regs = self.regularizers(vertices)
        return self.loss(response, regs), response, regs

    def loss(self, response: Tensor, regularizers: dict[str, Tensor]) -> Tensor:
        """The minimized objective: ``-response + Σ_k lambda_k · regularizers[k]`` (scalars)."""
        return -response + sum(getattr(self.hparams, f"lambda_{k}") * value
                               for k, value in regularizers.items())

    # -- Lightning hooks -----------------------------------------------------------------------
    def training_step(self, batch: Views, batch_idx: int) -> dict[str, Tensor] | None:
        loss, response, regs = self.objective(batch, seed=self._step_seed())
        if not torch.isfinite(loss):
            # Returned all the same (returning None would hang DDP): callbacks.SkipNonFinite
            # drops this step's gradients on every rank.
            return {"loss": loss}
        if self.hparams.restore_best or self.hparams.collapse_fraction > 0:
            self._remember_if_best(response.detach())
        normalized = self.normalized(response.detach())
        self.log("response", response, prog_bar=True)
        self.log("train/loss", loss)
        if torch.isfinite(normalized):
            self.log("train/normalized_response", normalized)
            self.log("norm_resp", normalized, prog_bar=True, logger=False)
        for name, value in regs.items():
            self.log(f"train/reg_{name}", value)
        return {"loss": loss, "response": response.detach(), "normalized_response": normalized}

    def _remember_if_best(self, response: Tensor) -> None:
        """:meth:`keep_if_best` with the response averaged over ranks, so every rank keeps
        the same step."""
        if self._trainer is not None:
            response = self.trainer.strategy.reduce(response, reduce_op="mean")
        self.keep_if_best(response)

    def keep_if_best(self, response: Tensor) -> None:
        """Keeps a copy of the stimulus parameters (:attr:`best_state`) when ``response`` (a
        scalar every rank agrees on) beats the best so far."""
        if response > self.best_response:
            self.best_response.fill_(float(response))
            self.best_state = {k: v.detach().clone()
                               for k, v in self._stimulus_state().items()}

    def restore_best(self) -> None:
        """Loads :attr:`best_state` back into the stimulus (no-op before the first step)."""
        if self.best_state is not None:
            self._load_stimulus_state(self.best_state)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if (not isinstance(outputs, dict) or "response" not in outputs
                or self.hparams.collapse_fraction <= 0 or self.best_state is None):
            return
        response = outputs["response"]
        if self._trainer is not None:
            response = self.trainer.strategy.reduce(response, reduce_op="mean")
        self.check_collapse(float(response))

    def check_collapse(self, response: float) -> bool:
        """Counts steps whose response is below ``collapse_fraction`` × best; after
        ``collapse_patience`` in a row, rolls back (see the class docstring). Returns whether
        it rolled back."""
        best = float(self.best_response)
        if best <= 0 or response >= self.hparams.collapse_fraction * best:
            self._steps_below = 0
            return False
        self._steps_below += 1
        if self._steps_below < self.hparams.collapse_patience:
            return False
        self._steps_below = 0
        self.rollbacks += 1
        self.restore_best()
        self.lr_scale.mul_(0.5)
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        for optimizer in optimizers:  # halved now; a schedule's factor keeps lr_scale after
            optimizer.state.clear()
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        warnings.warn(
            f"response collapsed to {response:.4g} (best {best:.4g}) for "
            f"{self.hparams.collapse_patience} steps at step {self.global_step}: rolled back to "
            f"the best parameters, learning rates x{float(self.lr_scale):g}", stacklevel=1)
        self.log("train/rollbacks", float(self.rollbacks))
        return True

    def _base_lrs(self) -> list[float]:
        rates = [self.hparams.lr]
        if isinstance(self.deformation, RBFDeformation):
            rates.append(self.hparams.lr_sigma or self.hparams.lr)
        if self.color is not None:
            rates.append(self.hparams.lr_color)
        return rates

    def _stimulus_state(self) -> dict[str, Tensor]:
        """The optimized parameters: the deformation's state, plus ``color.logits``."""
        state = dict(self.deformation.state_dict())
        if self.color is not None:
            state["color.logits"] = self.color.logits
        return state

    def _load_stimulus_state(self, state: dict[str, Tensor]) -> None:
        self.deformation.load_state_dict({k: v for k, v in state.items()
                                          if not k.startswith("color.")})
        if self.color is not None and "color.logits" in state:
            with torch.no_grad():
                self.color.logits.copy_(state["color.logits"])

    def on_train_end(self) -> None:
        if self.hparams.restore_best:
            self.restore_best()

    # -- admissible steps ----------------------------------------------------------------------
    @property
    def guarded(self) -> bool:
        """Whether optimizer steps are cut back to admissible meshes."""
        return bool(self.hparams.prevent_self_intersections
                    or self.hparams.max_area_ratio is not None)

    def geometry_parameters(self) -> list[Tensor]:
        """The parameters that move the mesh (not the colours)."""
        return [p for p in self.deformation.parameters()]

    def admissible(self) -> Admissible:
        """The admissibility test of this unit's meshes, its tolerances taken from the mesh
        as it is at the first call (the initial mesh, or a resumed one)."""
        if self._admissible is None:
            self._admissible = Admissible(self.faces, self.rest_vertices,
                                          intersections=self.hparams.prevent_self_intersections,
                                          max_area_ratio=self.hparams.max_area_ratio)
            with torch.no_grad():
                self._admissible.reference(self.vertices())
        return self._admissible

    def reach(self, vertices: Tensor, widen: float = 1.0) -> Tensor:
        """(V,) bool vertices -> (K,) bool kernels that move them: RBF kernels whose centre
        lies within ``3 widen`` σ_k of one of them on the initial mesh (free offsets: the
        vertices within ``widen - 1`` mean edge lengths)."""
        rest = self.rest_vertices
        d = torch.cdist(rest, rest[vertices.to(rest.device)]).min(dim=1).values
        if not isinstance(self.deformation, RBFDeformation):
            return d <= (widen - 1) * self.mean_edge_length + 1e-9
        return d < 3.0 * widen * self.deformation.sigma.detach()

    def keep_admissible(self, before: list[Tensor]) -> Tensor:
        """Undoes the step that moved :meth:`geometry_parameters` from ``before`` where its mesh
        is not admissible (:func:`~lit3d.geometry.feasibility.keep_admissible`); returns the
        (K,) fraction of the step each kernel kept."""
        test = self.admissible()
        with torch.no_grad():
            kept = keep_admissible(self.geometry_parameters(), before,
                                   lambda: test.violation(self.vertices()), self.reach,
                                   halvings=self.hparams.backtrack_halvings)
        return kept

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        if not self.guarded:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.admissible()
        before = [p.detach().clone() for p in self.geometry_parameters()]
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        kept = self.keep_admissible(before)
        inner = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        forget_undone(inner, self.geometry_parameters(), kept < 1)
        self.log("train/step_kept", kept.mean())

    def plausibility(self, views: Views | None = None) -> dict[str, Any]:
        """Physical plausibility of the current mesh
        (:func:`~lit3d.metrics.plausibility.plausibility`, against the initial mesh and the
        first of ``views``, by default the evaluation views)."""
        with torch.no_grad():
            return plausibility(self.vertices(), self.faces, self.rest_vertices,
                                views or self.evaluation_views())

    def on_train_epoch_end(self) -> None:
        measures = self.plausibility()
        for key in ("self_intersections", "area_ratio", "extent_over_view", "in_view_fraction"):
            self.log(f"plausibility/{key}", float(measures[key]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mei3d_best_state"] = self.best_state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_state = checkpoint.get("mei3d_best_state")

    def _evaluate(self, batch: Views, stage: str) -> dict[str, Tensor]:
        images, responses = self.respond(self.vertices(), batch, seed=0,
                                         spp=self.hparams.eval_spp)
        response = responses.mean()
        self.log(f"{stage}/response", response)
        normalized = self.normalized(response)
        if torch.isfinite(normalized):
            self.log(f"{stage}/normalized_response", normalized)
        return {"images": images, "response": response, "normalized_response": normalized}

    def validation_step(self, batch: Views, batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, "val")

    def test_step(self, batch: Views, batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: Views, batch_idx: int) -> dict[str, Tensor]:
        images, responses = self.respond(self.vertices(), batch, seed=0,
                                         spp=self.hparams.eval_spp)
        return {"images": images, "responses": responses,
                "normalized_responses": self.normalized(responses)}

    def evaluation_views(self) -> Views:
        """The datamodule's views, or without one the canonical overhead views."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        views = getattr(datamodule, "views", None)
        return views if isinstance(views, Views) else overhead_views()

    @torch.no_grad()
    def preview_images(self) -> Tensor:
        """(1, 3, H, W) linear render of the current mesh in the first evaluation view
        (``eval_spp``, seed 0): what :class:`callbacks.LogMedia` logs during a fit."""
        views = self.evaluation_views().to(self.device)[:1]
        return self.renderer(self.vertices(), self.faces, views, seed=0,
                             spp=self.hparams.eval_spp)

    @torch.no_grad()
    def final_evaluation(self, views: Views | None = None, num_seeds: int = 4) -> dict[str, Any]:
        """Headline metrics of the current mesh: the unit's response to the evaluation views
        (default: the datamodule's canonical views) averaged over ``num_seeds`` renders at
        ``eval_spp``, and the mesh's plausibility measures (:meth:`plausibility`). Also returns
        the first render, (B, 3, H, W)."""
        vertices = self.vertices()
        views = (views or self.evaluation_views()).to(vertices.device)
        responses, images = [], None
        for s in range(num_seeds):
            imgs, resp = self.respond(vertices, views, seed=s, spp=self.hparams.eval_spp)
            images = imgs if images is None else images
            responses.append(resp.mean())
        response = torch.stack(responses).mean()
        extra = {}
        if self.color is not None:  # what the shape alone achieves, for comparison
            shape_only = torch.stack([self.respond(vertices, views, seed=s,
                                                   spp=self.hparams.eval_spp,
                                                   shape_only=True)[1].mean()
                                      for s in range(num_seeds)]).mean()
            extra = {"normalized_response_shape_only": float(self.normalized(shape_only))}
        return {
            **self.plausibility(views),
            "response": float(response),
            "normalized_response": float(self.normalized(response)),
            "optimal_response": float(self.optimal_response),
            "neuron": int(self.hparams.neuron),
            "num_vertices": int(vertices.shape[0]),
            "num_faces": int(self.faces.shape[0]),
            "images": images,
            **extra,
        }

    def write_object_figures(self, out: Path, results: dict[str, Any], size: int = 512,
                             turntable_size: int = 320, spp: int = 32, suffix: str = "",
                             views: Views | None = None) -> list[Path]:
        """``object{suffix}.png`` (the model's view beside three views of the whole object,
        ``size`` pixels each) and ``turntable{suffix}.webp`` (36 frames around it), see
        :mod:`lit3d.analysis.object_figure`; titled with ``results``' normalized response and
        plausibility; ``views``: the fit's views (default: the evaluation views)."""
        from lit3d.analysis.object_figure import object_figure, turntable

        with torch.no_grad():
            vertices, colors = self.vertices().detach(), self.colors()
        view = (views or self.evaluation_views())[:1]
        title = (f"3D-MEI of unit {self.hparams.neuron}: normalized response "
                 f"{results.get('normalized_response', float('nan')):.3f}, self-intersecting "
                 f"faces {results.get('self_intersections', float('nan')):.3f}, area "
                 f"x{results.get('area_ratio', float('nan')):.2f} of the initial mesh")
        return [object_figure(Path(out) / f"object{suffix}.png", self.renderer, vertices,
                              self.faces, view, title=title, size=size, spp=spp, colors=colors),
                turntable(Path(out) / f"turntable{suffix}.webp", self.renderer, vertices,
                          self.faces, view, size=turntable_size, spp=max(spp // 2, 1),
                          colors=colors)]

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups: the offsets (``lr``), for RBF log σ (``lr_sigma``), and
        with ``color`` the colour logits (``lr_color``),
        both times the rollback scale ``lr_scale``."""
        params = [self.deformation.offsets]
        if isinstance(self.deformation, RBFDeformation):
            params.append(self.deformation.log_sigma)
        if self.color is not None:
            params.append(self.color.logits)
        scale = float(self.lr_scale)
        return [{"params": [p], "lr": r * scale} for p, r in zip(params, self._base_lrs())]

    def configure_optimizers(self):
        return build_optimizer(self, self.param_groups(), lambda: float(self.lr_scale))


def lr_factor(step: int, total: int, warmup: int = 0, decay: str = "cosine") -> float:
    """Learning-rate factor of step ``step`` of ``total``: linear from 1/``warmup`` up to 1 over
    the first ``warmup`` steps, then (``decay="cosine"``) cosine from 1 down to 0.05 at step
    ``total``, or (``"none"``) 1."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "none":
        return 1.0
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_optimizer(module: pl.LightningModule, groups: list[dict[str, Any]],
                    lr_scale=lambda: 1.0, settings=None):
    """Adam (or uniform Adam) over ``groups`` with the ``optimizer``, ``lr_warmup`` and
    ``lr_decay`` of ``settings`` (default: the module's hyperparameters); the schedule is per
    step, ``lr_scale()`` lets rollbacks rescale the rates it sets."""
    settings = module.hparams if settings is None else settings
    if settings.optimizer == "uniform_adam":
        from lit3d.geometry.largesteps import UniformAdam

        optimizer = UniformAdam(groups)
    else:
        optimizer = torch.optim.Adam(groups)
    decay = settings.lr_decay
    warmup = int(settings.lr_warmup)
    if decay == "none" and warmup == 0:
        return optimizer
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    start = lr_scale()

    def factor(step: int) -> float:
        return lr_factor(step, total, warmup, decay) * lr_scale() / start

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
