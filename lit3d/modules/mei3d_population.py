"""``MEI3DPopulation``: the 3D-MEIs of many units of one response model, spread over ranks.

One :class:`~lit3d.modules.mei3d.MEI3D` per unit (its own mesh deformation and render seed),
optimized together, batched: each step renders every unit's mesh in one renderer call (one mesh
per image), runs the response model once on that batch, and sums the units' losses. A unit's
image depends on its own mesh only and the model treats the images of a batch independently,
so each unit's gradient is the one it would get alone (tested: equal to a lone ``MEI3D`` with
the same seed; no gradient reaches another unit). Under a Lightning DDP strategy
(``--trainer.strategy ddp --trainer.devices R``) rank ``r`` renders and backpropagates only
units ``r, r + R, r + 2R, ...``. DDP averages gradients over ranks, so each rank's loss is
multiplied by ``R`` and touches the other units' parameters with a zero weight:
after the all-reduce every unit's gradient is exactly the one its rank computed, and every rank
holds every unit's parameters (rank 0 writes all the artifacts). The per-unit responses are
gathered across ranks each step, so every rank keeps the same best parameters of each unit.
Collapse rollback (``MEI3D.collapse_fraction``) is off here. With
``prevent_self_intersections`` / ``max_area_ratio`` every unit's step is cut back to an
admissible mesh after the (all-reduced) optimizer step, on every rank alike.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from lit3d.data.views import Views
from lit3d.geometry.feasibility import forget_undone
from lit3d.geometry.mesh import Mesh
from lit3d.geometry.primitives import MeshSource
from lit3d.models.base import ResponseModel
from lit3d.modules.mei3d import MEI3D, build_optimizer
from lit3d.render.base import Renderer, view_seeds


class MEI3DPopulation(pl.LightningModule):
    """3D-MEIs of the units ``neurons`` of ``response_model`` (see the module docstring).

    Args:
        response_model: the model whose units are maximized (shared by all units).
        neurons: unit indices (at least one, no repeats).
        renderer: renderer of the batched training and validation renders (every unit also
            keeps a copy for its own final evaluation).
        mesh: every unit's initial mesh.
        **unit_settings: the stimulus and optimizer settings of every unit, any argument of
            :class:`~lit3d.modules.mei3d.MEI3D` (``deformation``, ``rbf_sigma``,
            ``lambda_*``, ``lr``, ``prevent_self_intersections``, ...) but the per-unit
            ``neuron``, the collapse rollback (off) and ``color`` (uniform albedo). They are
            declared once, by ``MEI3D``, which checks them; the CLI lists them from there.
    """

    headline_metric = "mean_normalized_response"
    #: Printed after it: the largest of the units' values.
    headline_extras = ("self_intersections", "area_ratio")
    #: Every rank renders its units in every view (``ViewsDataModule`` does not shard them).
    replicate_views = True

    def __init__(
        self,
        response_model: ResponseModel,
        neurons: list[int],
        renderer: Renderer | None = None,
        mesh: MeshSource | None = None,
        **unit_settings,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["response_model", "renderer", "mesh"])
        neurons = [int(n) for n in neurons]
        if not neurons or len(set(neurons)) != len(neurons):
            raise ValueError(f"neurons must be a non-empty list without repeats, got {neurons}")
        if renderer is None:
            from lit3d.render.mitsuba import MitsubaRenderer

            renderer = MitsubaRenderer()
        self.neurons = neurons
        self.response_model = response_model
        self.renderer = renderer
        # The units are built here, in the constructor's body, so that jsonargparse can read
        # the arguments ``**unit_settings`` stands for off this call.
        from lit3d.compat import hyperparameters_not_captured

        # Settings that do not apply to a unit of a population are fixed, so the CLI does not
        # offer them.
        with hyperparameters_not_captured():  # see hyperparameters_not_captured
            units = [MEI3D(response_model=response_model, renderer=copy.deepcopy(renderer),
                           mesh=mesh, neuron=n, collapse_fraction=0.0, collapse_patience=1,
                           color=False, lr_color=1.0, lambda_color=0.0, **unit_settings)
                     for n in neurons]
        self.units = nn.ModuleList(units)

    @property
    def settings(self):
        """The units' settings (every unit has the same; defaults filled in)."""
        return self.units[0].hparams

    # -- sharding ------------------------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        if self._trainer is None:
            return 1, 0
        return int(self.trainer.world_size), int(self.trainer.global_rank)

    def local_units(self) -> list[int]:
        """Positions (in ``neurons``) of the units this rank renders: ``rank::world_size``."""
        world, rank = self._world()
        return list(range(rank, len(self.units), world))

    def _gather(self, local: Tensor) -> Tensor:
        """(N,) with NaN where this rank has no value -> (N,) values from whichever rank has
        them (every unit is measured on exactly one rank)."""
        world, _ = self._world()
        if world == 1:
            return local
        gathered = self.all_gather(local)  # (world, N)
        return gathered.nan_to_num(float("-inf")).max(dim=0).values

    # -- batched evaluation of the units ------------------------------------------------------
    def respond(self, units: list[int], views: Views, seeds: list[int],
                spp: int | None = None) -> tuple[list[Tensor], Tensor, Tensor]:
        """Renders units ``units`` (positions in ``neurons``) in ``views`` (B views each) in one
        renderer call, unit ``units[i]`` with render seed ``seeds[i]`` (as a lone ``MEI3D``
        with that seed), and runs the response model once on the batch.

        Returns ``(vertices, images, responses)``: each unit's (V, 3) vertices, the
        (len(units)·B, 3, H, W) images (unit-major) and (len(units),) the mean response of
        each unit to its own images."""
        vertices = [self.units[k].vertices() for k in units]
        count = len(views)
        meshes = torch.stack(vertices).repeat_interleave(count, dim=0)  # (n·B, V, 3)
        every = Views.cat([views] * len(units))
        per_view = [s for seed in seeds for s in view_seeds(seed, count)]
        images = self.renderer(meshes, self.units[units[0]].faces, every, seed=per_view, spp=spp)
        outputs = self.response_model(images)  # (n·B, units of the model)
        columns = torch.tensor([self.units[k].hparams.neuron for k in units],
                               device=outputs.device).repeat_interleave(count)
        rows = torch.arange(outputs.shape[0], device=outputs.device)
        responses = outputs[rows, columns].view(len(units), count).mean(1)
        return vertices, images, responses

    # -- training ------------------------------------------------------------------------------
    def objective(self, views: Views, step: int, units: list[int] | None = None
                  ) -> tuple[Tensor, Tensor]:
        """``(loss, responses)`` of training step ``step`` for ``units`` (default this rank's):
        the sum over the units of ``-response + Σ λ·regularizer`` (each as
        :meth:`MEI3D.objective` with the unit's step seed), and (N,) the units' responses
        (NaN for units not evaluated here)."""
        units = self.local_units() if units is None else units
        responses = torch.full((len(self.units),), float("nan"), device=self.device)
        losses = []
        if units:
            seeds = [self.units[k].step_seed(step) for k in units]
            vertices, _, unit_responses = self.respond(units, views, seeds)
            for k, v, response in zip(units, vertices, unit_responses):
                unit = self.units[k]
                losses.append(unit.loss(response, unit.regularizers(v)))
                responses[k] = response.detach()
        loss = torch.stack(losses).sum() if losses else torch.zeros((), device=self.device)
        return loss, responses

    def training_step(self, batch: Views, batch_idx: int) -> dict[str, Tensor]:
        world, _ = self._world()
        loss, responses = self.objective(batch, int(self.global_step))
        # Each rank drives only its units; DDP needs every parameter in the graph and
        # averages over ranks, hence the zero-weighted rest and the factor world.
        untouched = sum(p.sum() for p in self.parameters() if p.requires_grad)
        total = world * loss + 0.0 * untouched
        responses = self._gather(responses)
        if self.settings.restore_best:  # the gathered responses: every rank decides alike
            self._remember_best(responses)
        normalized = torch.stack([u.normalized(r) for u, r in zip(self.units, responses)])
        self.log("train/loss", total / world, prog_bar=True)
        self.log("train/mean_response", responses.mean())
        if torch.isfinite(normalized).all():
            self.log("train/mean_normalized_response", normalized.mean(), prog_bar=True)
        for n, value in zip(self.neurons, normalized):
            self.log(f"train/normalized_response/{n}", value)
        return {"loss": total, "mean_response": responses.mean()}

    def _remember_best(self, responses: Tensor) -> None:
        for unit, response in zip(self.units, responses):
            if torch.isfinite(response):
                unit.keep_if_best(response)

    def on_train_end(self) -> None:
        if self.settings.restore_best:
            for unit in self.units:
                unit.restore_best()

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        guarded = [unit for unit in self.units if unit.guarded]
        if not guarded:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        for unit in guarded:
            unit.admissible()
        before = [[p.detach().clone() for p in unit.geometry_parameters()] for unit in guarded]
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        inner = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        kept = []
        for unit, values in zip(guarded, before):
            unit_kept = unit.keep_admissible(values)
            forget_undone(inner, unit.geometry_parameters(), unit_kept < 1)
            kept.append(unit_kept.mean())
        self.log("train/step_kept", torch.stack(kept).mean())

    def on_train_epoch_end(self) -> None:
        measures = [unit.plausibility(self._views()) for unit in self.units]
        for key in ("self_intersections", "area_ratio"):
            for n, m in zip(self.neurons, measures):
                self.log(f"plausibility/{key}/{n}", float(m[key]))
            self.log(f"plausibility/max_{key}", max(float(m[key]) for m in measures))

    def configure_optimizers(self):
        groups = [group for unit in self.units for group in unit.param_groups()]
        return build_optimizer(self, groups, settings=self.settings)

    # -- evaluation ----------------------------------------------------------------------------
    def _views(self) -> Views | None:
        views = getattr(getattr(self._trainer, "datamodule", None), "views", None)
        return views if isinstance(views, Views) else None

    def validation_step(self, batch: Views, batch_idx: int) -> None:
        responses = torch.full((len(self.units),), float("nan"), device=self.device)
        local = self.local_units()
        if local:
            _, _, local_responses = self.respond(local, batch, [0] * len(local),
                                                 spp=self.settings.eval_spp)
            responses[torch.tensor(local, device=self.device)] = local_responses
        responses = self._gather(responses)
        normalized = torch.stack([u.normalized(r) for u, r in zip(self.units, responses)])
        self.log("val/mean_response", responses.mean())
        if torch.isfinite(normalized).all():
            self.log("val/mean_normalized_response", normalized.mean())
        for n, value in zip(self.neurons, normalized):
            self.log(f"val/normalized_response/{n}", value)

    @torch.no_grad()
    def final_evaluation(self) -> dict[str, Any]:
        """Every unit's :meth:`MEI3D.final_evaluation` on the datamodule's views: per-unit
        responses and plausibility measures, their mean normalized response (the headline), the
        largest self-intersecting fraction and area ratio of the units, and a row of renders
        (units side by side)."""
        results = [unit.final_evaluation(self._views()) for unit in self.units]
        normalized = [r["normalized_response"] for r in results]
        measures = [{k: v for k, v in r.items() if k not in ("images", "neuron")}
                    for r in results]
        return {
            "mean_normalized_response": float(torch.tensor(normalized).mean()),
            "self_intersections": max(r["self_intersections"] for r in results),
            "area_ratio": max(r["area_ratio"] for r in results),
            "neurons": list(self.neurons),
            "normalized_responses": normalized,
            "responses": [r["response"] for r in results],
            "units": measures,
            "images": torch.cat([r["images"][:1] for r in results], dim=-1),
        }

    def write_object_figures(self, out: Path, results: dict[str, Any], size: int = 512,
                             turntable_size: int = 320, spp: int = 32) -> list[Path]:
        """Every unit's object figure and turntable (:meth:`MEI3D.write_object_figures`),
        ``object_neuron_<n>.png`` and ``turntable_neuron_<n>.webp``."""
        files = []
        for k, (n, unit) in enumerate(zip(self.neurons, self.units)):
            unit_results = results["units"][k] if "units" in results else {}
            files += unit.write_object_figures(out, unit_results, size, turntable_size, spp,
                                               suffix=f"_neuron_{n}", views=self._views())
        return files

    @torch.no_grad()
    def preview_images(self) -> Tensor:
        """(1, 3, H, N·W): every unit's current render, side by side."""
        views = self._views()
        return torch.cat([
            unit.renderer(unit.vertices(), unit.faces,
                          (views if views is not None else unit.evaluation_views())[:1]
                          .to(self.device), seed=0, spp=unit.hparams.eval_spp)
            for unit in self.units], dim=-1)

    def meshes(self) -> dict[str, Mesh]:
        """Every unit's current mesh, named ``neuron_<index>``."""
        return {f"neuron_{n}": unit.current_mesh() for n, unit in zip(self.neurons, self.units)}

    def current_mesh(self) -> Mesh:
        """The first unit's mesh (``meshes()`` has them all)."""
        return self.units[0].current_mesh()

    # -- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["population_best_states"] = [unit.best_state for unit in self.units]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for unit, state in zip(self.units, checkpoint.get("population_best_states", [])):
            unit.best_state = state
