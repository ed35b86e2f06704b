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
from lit3d.metrics.metamer import metamer_summary, read_baseline
from lit3d.metrics.rsa import KendallRSA
from lit3d.metrics.similarity import HypersphereSimilarity, hypersphere_similarity
from lit3d.render.base import Seed

#: Seed of the target renders (never used for training renders, which count up from 0).
TARGET_SEED = 2**30 + 17
#: Seed of the validation renders (fixed: epochs are compared on the same noise).
EVAL_SEED = 2**30 + 101


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

    def setup_evaluation(self, model: torch.nn.Module | None, baseline: str | None) -> None:
        """The network (frozen; ``None`` for a pixel run without similarity) and the baseline
        run's summary (path of its ``summary.json`` or log dir) the metamer criterion uses."""
        self.model = model
        if model is not None:
            model.requires_grad_(False)
        self.network = getattr(model, "name", None if model is None else type(model).__name__)
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
    def _latents(self, images: Tensor, chunk: int = 8) -> Tensor:
        return torch.cat([latents_of(self.model, images[i:i + chunk])
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
        if self.model is not None:
            self._target_latents = self._latents(self._targets)
            if not any(h["epoch"] < 0 for h in self.history):
                images = self.render_current(views, seed=EVAL_SEED, spp=self.hparams.eval_spp)
                per_view = hypersphere_similarity(self._latents(images), self._target_latents)
                self.history.append({"epoch": -1, "similarity": float(per_view.mean()),
                                     "per_view": per_view.tolist()})

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
        if not self.trainer.sanity_checking:
            self.history = [h for h in self.history if h["epoch"] != record["epoch"]]
            self.history.append(record)
        self.after_validation(record)

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
        """The metamer criterion's fields (:func:`lit3d.metrics.metamer.metamer_summary`)."""
        return metamer_summary(self.history, self.baseline, self.network, self.hparams.loss)

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
        for key in [k for k in state if k.startswith("model.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores the history and puts the network's weights back into the state."""
        self.history = checkpoint.get("mrd_history", [])
        state = checkpoint["state_dict"]
        if self.model is not None and not any(k.startswith("model.") for k in state):
            state.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
