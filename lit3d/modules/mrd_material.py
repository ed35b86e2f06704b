"""``MRDMaterial``: reconstruct a target's material from its renders (MRD paper, sec. 3).

The object of MRD's material scene (:class:`~lit3d.render.material_scene.MaterialRenderer`)
always starts from a Principled BSDF, whatever the target's BSDF is (a textured diffuse, a
brushed metal, ...): the problem is metameric by construction. The chosen Principled
parameters (a name pattern over :data:`~lit3d.render.materials.PRINCIPLED_PARAMETERS`;
uniform values or textures) are optimized with Adam; each training step renders every view of
the batch (MRD: all four, one step per epoch, gradients accumulated over the views) and
compares them with the target's renders of the same views:

- pixel loss (the baseline run): the dual-buffer loss of two renders with independent seeds
  when path tracing (:func:`lit3d.losses.dual_buffer_loss`), else the MAE;
- latent loss (the metamer run): the network's dissimilarity of ``sRGB(Reinhard(render))``.

After every optimizer step each parameter is clamped to its valid range (MRD's transformation
T). Validation, similarity, RSA and ``summary.json`` are :class:`MRDReconstruction`'s; when the
target's parameters are known (:class:`~lit3d.render.materials.KnownPrincipled`) the run also
reports each parameter's error and ``max_param_error``, its headline.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.losses import dual_buffer_loss, latent_loss, pixel_mae
from lit3d.modules.mrd_base import MRDReconstruction, check_reconstruction_args
from lit3d.render.base import Seed
from lit3d.render.material_scene import MaterialRenderer
from lit3d.render.materials import (
    Material,
    clamp_principled,
    parameter_shape,
    select_parameters,
    start_value,
)


class MRDMaterial(MRDReconstruction):
    """Material reconstruction of a target (see the module docstring).

    Args:
        target: the target :class:`~lit3d.render.materials.Material` (e.g.
            :class:`~lit3d.render.materials.BrushedMetal`).
        parameters: which Principled parameters to optimize: a regular expression matched
            against whole names (``".*"``: all; ``"base_color|roughness|metallic"``) or a
            list of them. The others stay at their start values.
        textures: texture resolution of parameters optimized as textures, e.g.
            ``{"base_color": 64}``; the others are uniform.
        initial: start values (scalar or per channel) overriding the defaults of
            :data:`~lit3d.render.materials.PRINCIPLED_PARAMETERS`.
        renderer: a :class:`~lit3d.render.material_scene.MaterialRenderer` (default: ``prb``,
            64², 16 spp).
        loss: ``"pixel"`` (the baseline) or ``"latent"`` (through ``model``).
        pixel_loss: ``"auto"`` (dual-buffer with path tracers, MAE otherwise),
            ``"dual_buffer"`` or ``"mae"``.
        model: a zoo :class:`~lit3d.models.zoo.VisionModel`; required for ``loss="latent"``;
            with the pixel loss it measures the similarity the metamer criterion uses.
        lr: Adam learning rate (MRD Table 1: 0.03; translucent 0.2).
        target_spp: samples per pixel of the target renders (made once at the start).
        eval_spp: samples per pixel of validation and final renders.
        baseline: path of a pixel-baseline run's ``summary.json`` (or its log dir).
        similarity_models: more networks (zoo :class:`~lit3d.models.zoo.VisionModel`) that
            score every validation (similarity, RSA) but never enter the loss: one pixel
            baseline then holds the bar for each of them (``summary.json``'s ``networks``).
    """

    def __init__(
        self,
        target: Material,
        parameters: str | Sequence[str] = ".*",
        textures: dict[str, int] | None = None,
        initial: dict[str, float | list[float]] | None = None,
        renderer: MaterialRenderer | None = None,
        loss: Literal["pixel", "latent"] = "pixel",
        pixel_loss: Literal["auto", "dual_buffer", "mae"] = "auto",
        model: torch.nn.Module | None = None,
        lr: float = 0.03,
        target_spp: int = 128,
        eval_spp: int = 32,
        baseline: str | None = None,
        similarity_models: list[torch.nn.Module] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["target", "renderer", "model", "similarity_models"])
        check_reconstruction_args(loss, model, lr, target_spp, eval_spp)
        if pixel_loss not in ("auto", "dual_buffer", "mae"):
            raise ValueError(f"unknown pixel_loss {pixel_loss!r}; use 'auto', 'dual_buffer' or "
                             "'mae'")
        if not isinstance(target, Material):
            raise TypeError(f"target must be a lit3d.render.materials.Material, got "
                            f"{type(target).__name__}")
        self.target = target
        self.renderer = renderer if renderer is not None else MaterialRenderer()
        self.setup_evaluation(model, baseline, similarity_models)
        names = select_parameters(parameters)
        textures, initial = dict(textures or {}), dict(initial or {})
        for key, what in ((textures, "textures"), (initial, "initial")):
            unknown = set(key) - set(select_parameters(".*"))
            if unknown:
                raise ValueError(f"{what} names unknown Principled parameters {sorted(unknown)}")
        stray = set(textures) - set(names)
        if stray:
            raise ValueError(f"textures given for parameters that are not optimized: "
                             f"{sorted(stray)} (optimized: {names})")
        self.params = torch.nn.ParameterDict({
            name: torch.nn.Parameter(start_value(name, parameter_shape(name, textures.get(name)),
                                                 initial.get(name)))
            for name in names})
        # Fixed start values of parameters set in ``initial`` but not optimized.
        self._fixed = {name: start_value(name, parameter_shape(name, None), value)
                       for name, value in initial.items() if name not in names}

    @property
    def dual_buffer(self) -> bool:
        """Whether the pixel loss is the dual-buffer loss (``pixel_loss``; ``auto``: when path
        tracing)."""
        choice = self.hparams.pixel_loss
        return choice == "dual_buffer" or (choice == "auto" and self.renderer.path_traced)

    # -- rendering -----------------------------------------------------------------------------
    def values(self) -> dict[str, Tensor]:
        """The current Principled parameters: optimized ones (differentiable) and fixed ones."""
        return {**{k: v.to(self.device) for k, v in self._fixed.items()}, **dict(self.params)}

    def render_target(self, views: Views, seed: Seed, spp: int | None = None) -> Tensor:
        return self.renderer.render_material(self.target, views, seed=seed, spp=spp)

    def render_current(self, views: Views, seed: Seed, spp: int | None = None) -> Tensor:
        return self.renderer.render(self.values(), views, seed=seed, spp=spp)

    # -- training ------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Views], batch_idx: int) -> Tensor:
        index, views = batch
        targets = self._targets[index]
        if self.hparams.loss == "latent":
            images = self.render_current(views, seed=self.step_seeds(index))
            loss = latent_loss(self.model, images, self._target_latents[index])
        elif self.dual_buffer:
            # Both buffers in one render call: 2B images, independent seeds.
            both = self.render_current(Views.cat([views, views]),
                                       seed=self.step_seeds(index) + self.step_seeds(index, 1))
            loss = dual_buffer_loss(both[:len(index)], both[len(index):], targets)
        else:
            loss = pixel_mae(self.render_current(views, seed=self.step_seeds(index)), targets)
        if not torch.isfinite(loss):
            return loss  # callbacks.SkipNonFinite drops the step on every rank
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(index), sync_dist=True)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer's step, then MRD's transformation T: every parameter back into its
        valid range, before any callback's ``on_train_batch_end`` sees the parameters."""
        super().optimizer_step(*args, **kwargs)
        self.clamp_()

    def clamp_(self) -> None:
        """Clamps every optimized parameter to its valid range, in place."""
        clamp_principled(dict(self.params))

    def snapshot(self) -> dict[str, Tensor]:
        """Copies of the optimized parameters, for :meth:`restore` (early stopping)."""
        return {name: value.detach().clone() for name, value in self.params.items()}

    @torch.no_grad()
    def restore(self, snapshot: dict[str, Tensor]) -> None:
        for name, value in snapshot.items():
            self.params[name].copy_(value.to(self.params[name]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.params.parameters(), lr=self.hparams.lr)

    # -- evaluation ----------------------------------------------------------------------------
    def parameter_errors(self) -> dict[str, float] | None:
        """Largest absolute error of each optimized parameter known for the target
        (:meth:`~lit3d.render.materials.Material.known_parameters`; textures: over texels
        and channels), or ``None`` if the target's parameters are unknown."""
        known = self.target.known_parameters()
        if known is None:
            return None
        errors = {}
        for name, value in known.items():
            if name in self.params:
                current = self.params[name].detach().cpu()
                errors[name] = float((current - value.reshape(-1)).abs().max())
        return errors

    def after_validation(self, record: dict[str, Any]) -> None:
        errors = self.parameter_errors()
        if errors:
            record["max_param_error"] = max(errors.values())
            self.log("val/max_param_error", record["max_param_error"])

    def material(self) -> dict[str, Any]:
        """The current parameters as plain lists (uniform) or texture shapes."""
        out: dict[str, Any] = {}
        for name, value in self.values().items():
            value = value.detach().cpu()
            out[name] = value.tolist() if value.ndim == 1 else {
                "texture_shape": list(value.shape), "mean": value.mean((0, 1)).tolist()}
        return out

    @torch.no_grad()
    def final_evaluation(self) -> dict[str, Any]:
        """The summary (metamer fields, the final material, per-parameter errors when known),
        ``max_param_error`` when the target's parameters are known, and a preview grid."""
        results: dict[str, Any] = {}
        summary = self.summary()
        summary["material"] = self.material()
        errors = self.parameter_errors()
        if errors:
            summary["param_errors"] = errors
            summary["max_param_error"] = results["max_param_error"] = max(errors.values())
        if summary.get("top_similarity") is not None:
            results["similarity"] = summary["top_similarity"]
        results["summary"] = summary
        if self._trainer is not None:
            results.update(self.preview_figure())
        return results

    @property
    def headline_metric(self) -> str:
        """``max_param_error`` when the target's parameters are known, else the top
        similarity."""
        return "max_param_error" if self.target.known_parameters() is not None else "similarity"
