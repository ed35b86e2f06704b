"""``MRDReconstruction``: what MRD's shape and material reconstructions share.

A reconstruction renders a fixed *target* scene and a *current* scene (the parameters being
optimized) in the views of a rig datamodule (:mod:`lit3d.data.rig`), compares them by pixels
(the baseline run) or through a frozen vision network's latents (the metamer run), and every
validation epoch logs the network's hypersphere similarity and Kendall RSA between the current
and target latents over all views (RSA needs 3 views or more: with fewer, ``rsa_tau`` and
``rsa_p`` are ``None``). The per-epoch ``history`` feeds the run's ``summary.json``
(:func:`lit3d.metrics.metamer.metamer_summary`, the metamer criterion against a baseline run).

Subclasses implement :meth:`render_target` and :meth:`render_current`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.losses import latents_of, pixel_mae
from lit3d.metrics.metamer import metamer_summary, network_summaries, read_baseline
from lit3d.metrics.rsa import KendallRSA
from lit3d.metrics.similarity import HypersphereSimilarity, hypersphere_similarity
from lit3d.render.base import Seed

#: Seed of the target renders (never used for training renders, which count up from 0).
TARGET_SEED = 2**30 + 17
#: Seed of the validation renders (fixed: epochs are compared on the same noise).
EVAL_SEED = 2**30 + 101


def network_name(model: torch.nn.Module | None) -> str | None:
    """A network's name in summaries and logs: its ``name`` (zoo models), else its class."""
    return None if model is None else getattr(model, "name", None) or type(model).__name__


def check_reconstruction_args(loss: str, model, lr: float, target_spp: int,
                              eval_spp: int) -> None:
    """The arguments every MRD reconstruction shares, checked: ``ValueError`` naming the
    first bad one."""
    if loss not in ("pixel", "latent"):
        raise ValueError(f"unknown loss {loss!r}; use 'pixel' or 'latent'")
    if loss == "latent" and model is None:
        raise ValueError("loss='latent' needs a model (e.g. lit3d.models.VisionModel)")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if target_spp < 1 or eval_spp < 1:
        raise ValueError("target_spp and eval_spp must be >= 1")


class MRDReconstruction(pl.LightningModule):
    """Base class (see the module docstring). Call :meth:`setup_evaluation` in ``__init__``."""

    #: Printed after the headline metric on the run's last line (none for MRD).
    headline_extras: tuple[str, ...] = ()

    def setup_evaluation(self, model: torch.nn.Module | None, baseline: str | None,
                         similarity_models: list[torch.nn.Module] | None = None) -> None:
        """The network (frozen; ``None`` for a pixel run without similarity), the baseline
        run's summary (path of its ``summary.json`` or log dir) the metamer criterion uses,
        and more networks that only score validation (``similarity_models``: frozen, never in
        the loss; their names must differ from each other and from ``model``'s)."""
        self.model = model
        if model is not None:
            model.requires_grad_(False)
        self.network = network_name(model)
        scorers = list(similarity_models or [])
        names = [network_name(m) for m in scorers]
        taken = [n for n in [self.network, *names] if n is not None]
        if len(set(taken)) != len(taken):
            raise ValueError(f"the scored networks need distinct names, got {taken} (model "
                             "and similarity_models)")
        for scorer in scorers:
            scorer.requires_grad_(False)
        self.similarity_models = torch.nn.ModuleList(scorers)
        self.scorer_names = names
        self.scorer_similarity = torch.nn.ModuleList(
            [HypersphereSimilarity(output="mean") for _ in scorers])
        self.scorer_rsa = torch.nn.ModuleList([KendallRSA() for _ in scorers])
        self._scorer_targets: list[Tensor] | None = None
        self.baseline = (read_baseline(baseline, self.network) if baseline is not None
                         else None)
        self.history: list[dict[str, Any]] = []
        self.similarity = HypersphereSimilarity(output="mean")
        self.rsa = KendallRSA()
        self._targets: Tensor | None = None
        self._target_latents: Tensor | None = None
        self._val_per_view: Tensor | None = None
        self._val_mae: list[Tensor] = []

    # -- rendering (subclasses) ----------------------------------------------------------------
    def render_target(self, views: Views, seed: Seed, spp: int | None = None) -> Tensor:
        """(B, 3, H, W) linear renders of the target scene."""
        raise NotImplementedError

    def render_current(self, views: Views, seed: Seed, spp: int | None = None) -> Tensor:
        """(B, 3, H, W) linear renders of the current parameters (differentiable)."""
        raise NotImplementedError

    # -- the rig and its targets ---------------------------------------------------------------
    def rig(self) -> Views:
        """All views of the datamodule's rig, (N,), on this module's device."""
        views = getattr(getattr(self.trainer, "datamodule", None), "views", None)
        if not isinstance(views, Views):
            raise RuntimeError(f"{type(self).__name__} needs a datamodule with a `views` rig, "
                               "e.g. lit3d.data.FibonacciViewsDataModule")
        return views.to(self.device)

    @torch.no_grad()
    def _latents(self, images: Tensor, chunk: int = 8, model: torch.nn.Module | None = None
                 ) -> Tensor:
        model = self.model if model is None else model
        return torch.cat([latents_of(model, images[i:i + chunk])
                          for i in range(0, images.shape[0], chunk)])

    @torch.no_grad()
    def prepare_targets(self) -> None:
        """Renders the target in every view of the rig once (and its latents), and records the
        starting point's similarity as epoch -1 of the history."""
        if self._targets is not None:
            return
        views = self.rig()
        self._targets = self.render_target(views, seed=TARGET_SEED,
                                           spp=self.hparams.target_spp)
        self._scorer_targets = [self._latents(self._targets, model=m)
                                for m in self.similarity_models]
        if self.model is not None:
            self._target_latents = self._latents(self._targets)
        if (self.model is None and not self.similarity_models) or \
                any(h["epoch"] < 0 for h in self.history):
            return
        images = self.render_current(views, seed=EVAL_SEED, spp=self.hparams.eval_spp)
        record: dict[str, Any] = {"epoch": -1}
        if self.model is not None:
            per_view = hypersphere_similarity(self._latents(images), self._target_latents)
            record.update(similarity=float(per_view.mean()), per_view=per_view.tolist())
        if self.similarity_models:
            record["networks"] = {
                name: {"similarity": float(hypersphere_similarity(
                    self._latents(images, model=m), targets).mean())}
                for name, m, targets in zip(self.scorer_names, self.similarity_models,
                                            self._scorer_targets)}
        self.history.append(record)

    def on_fit_start(self) -> None:
        self.prepare_targets()

    def on_validation_start(self) -> None:
        self.prepare_targets()

    # -- seeds ---------------------------------------------------------------------------------
    def step_seeds(self, index: Tensor, stream: int = 0) -> list[int]:
        """Render seed of each view ``index`` (B,) at this step: fresh noise every step, and a
        function of (step, view, stream) only, so a run sharded over ranks (DDP) renders
        exactly the images of a single-process run with ``batch_size = world size``.
        ``stream`` > 0 gives independent seeds for a second render of the same views (the
        dual-buffer loss)."""
        step = int(self.global_step)
        return [(step * 7919 + 104729 * int(i) + 1 + 15485863 * stream) % (2**31 - 1)
                for i in index.tolist()]

    @staticmethod
    def eval_seeds(index: Tensor) -> list[int]:
        """Render seed of each view ``index`` in validation and final renders (fixed, so epochs
        compare on the same noise; per view, so sharding over ranks does not change it)."""
        return [(EVAL_SEED * 1_000_003 + int(i)) % (2**32) for i in index.tolist()]

    # -- evaluation ----------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_per_view = torch.full((len(self.rig()),), float("nan"), device=self.device)
        self._val_mae = []

    def validation_step(self, batch: tuple[Tensor, Views], batch_idx: int) -> None:
        index, views = batch
        images = self.render_current(views, seed=self.eval_seeds(index),
                                     spp=self.hparams.eval_spp)
        self._val_mae.append(pixel_mae(images, self._targets[index]).detach()[None]
                             .repeat(len(index)))
        for k, scorer in enumerate(self.similarity_models):
            latents = self._latents(images, model=scorer)
            self.scorer_similarity[k].update(latents, self._scorer_targets[k][index])
            self.scorer_rsa[k].update(latents, self._scorer_targets[k][index])
        if self.model is None:
            return
        latents = self._latents(images)
        target = self._target_latents[index]
        self.similarity.update(latents, target)
        self.rsa.update(latents, target)
        self._val_per_view[index] = hypersphere_similarity(latents, target).to(self._val_per_view)

    def on_validation_epoch_end(self) -> None:
        mae = self.all_gather(torch.cat(self._val_mae).mean()).mean()
        self.log("val/pixel_mae", mae, sync_dist=False)
        record: dict[str, Any] = {"epoch": int(self.current_epoch), "pixel_mae": float(mae)}
        if self.model is not None:
            similarity = self.similarity.compute()
            # RSA compares the views' similarity matrices: it needs 3 views (2 pairs) or more.
            rsa = self.rsa.compute() if len(self.rig()) >= 3 else None
            per_view = self.all_gather(self._val_per_view)
            if per_view.ndim == 2:  # (world, N): each view measured on one rank
                per_view = per_view.nan_to_num(float("-inf")).max(dim=0).values
            self.similarity.reset()
            self.rsa.reset()
            self.log("val/similarity", similarity)
            record.update(similarity=float(similarity), per_view=per_view.tolist(),
                          rsa_tau=None, rsa_p=None)
            if rsa is not None:
                self.log("val/rsa_tau", rsa["tau"])
                self.log("val/rsa_p", rsa["p_value"])
                record.update(rsa_tau=float(rsa["tau"]), rsa_p=float(rsa["p_value"]))
        if self.similarity_models:
            record["networks"] = self._score_networks()
        if not self.trainer.sanity_checking:
            self.history = [h for h in self.history if h["epoch"] != record["epoch"]]
            self.history.append(record)
        self.after_validation(record)

    def _score_networks(self) -> dict[str, dict[str, float | None]]:
        """This validation's similarity and RSA under each of ``similarity_models`` (logged as
        ``val/<name>/similarity`` ...), and their metrics reset."""
        scores = {}
        for name, similarity, rsa in zip(self.scorer_names, self.scorer_similarity,
                                         self.scorer_rsa):
            value = similarity.compute()
            result = rsa.compute() if len(self.rig()) >= 3 else None
            similarity.reset()
            rsa.reset()
            self.log(f"val/{name}/similarity", value)
            scores[name] = {"similarity": float(value), "rsa_tau": None, "rsa_p": None}
            if result is not None:
                self.log(f"val/{name}/rsa_tau", result["tau"])
                scores[name].update(rsa_tau=float(result["tau"]),
                                    rsa_p=float(result["p_value"]))
        return scores

    def after_validation(self, record: dict[str, Any]) -> None:
        """Hook for subclasses: add to an epoch's history ``record`` (in place)."""

    def epoch_history(self) -> dict[str, list[tuple[int, float]]]:
        """The validation measures per epoch: similarity to the target, RSA τ and pixel MAE
        (``val/...``), as ``(epoch, value)`` points."""
        names = {"similarity": f"hypersphere similarity ({self.network or 'network'})",
                 "rsa_tau": "RSA Kendall τ", "pixel_mae": "pixel MAE (linear radiance)"}
        return {label: [(h["epoch"], h[key]) for h in self.history if h.get(key) is not None]
                for key, label in names.items()}

    def summary(self) -> dict[str, Any]:
        """The metamer criterion's fields (:func:`lit3d.metrics.metamer.metamer_summary`) and,
        with ``similarity_models``, ``networks``: each scored network's (``model``'s included)
        top similarity, its epoch, final similarity and RSA there."""
        summary = metamer_summary(self.history, self.baseline, self.network, self.hparams.loss)
        if self.similarity_models:
            summary["networks"] = network_summaries(self.history, self.network,
                                                    self.scorer_names, self.hparams.loss)
        return summary

    @torch.no_grad()
    def preview_images(self, count: int = 4) -> Tensor:
        """(1, 3, 2H, count·W) linear image: the current parameters in the first ``count``
        views (top row, ``eval_spp``) above the target's renders (bottom row, made once at
        the start at ``target_spp``)."""
        self.prepare_targets()
        count = min(count, len(self._targets))
        images = self.render_current(self.rig()[:count], seed=self.eval_seeds(torch.arange(count)),
                                     spp=self.hparams.eval_spp)
        top = torch.cat(list(images), dim=-1)
        bottom = torch.cat(list(self._targets[:count]), dim=-1)
        return torch.cat([top, bottom], dim=-2)[None]

    def preview_figure(self, count: int = 4) -> dict[str, Any]:
        """:meth:`preview_images` with the names of its rows and columns, as
        ``final_evaluation`` hands them to :class:`callbacks.FitArtifacts` (``render.png``)."""
        images = self.preview_images(count)
        columns = images.shape[-1] // (images.shape[-2] // 2)
        return {"images": images, "image_rows": ["reconstruction", "target"],
                "image_columns": [f"view {i}" for i in range(columns)]}

    # -- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds the history; leaves out the frozen network's weights (rebuilt from the config,
        which the CLI checks is the same on resume: a ResNet-50 would add 100 MB a file)."""
        checkpoint["mrd_history"] = self.history
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(("model.", "similarity_models."))]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores the history and puts the network's weights back into the state."""
        self.history = checkpoint.get("mrd_history", [])
        state = checkpoint["state_dict"]
        if self.model is not None and not any(k.startswith("model.") for k in state):
            state.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        if not any(k.startswith("similarity_models.") for k in state):
            state.update({f"similarity_models.{k}": v
                          for k, v in self.similarity_models.state_dict().items()})
