"""Hypersphere (cosine) similarity between a reconstruction's and a target's latents, per view.

MRD compares a network's latents of the render and of the target view after projecting both onto
the unit hypersphere: ``s_v = <z_v / |z_v|, t_v / |t_v|>`` in [-1, 1], averaged over views.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def hypersphere_similarity(preds: Tensor, target: Tensor) -> Tensor:
    """(B, D), (B, D) latents -> (B,) cosine similarity of the L2-normalized latents."""
    if preds.shape != target.shape or preds.ndim != 2:
        raise ValueError(f"expected two (B, D) latents of equal shape, got {tuple(preds.shape)} "
                         f"and {tuple(target.shape)}")
    return (F.normalize(preds.double(), dim=1) * F.normalize(target.double(), dim=1)).sum(1)


class HypersphereSimilarity(Metric):
    """Mean (and std) over views of :func:`hypersphere_similarity`.

    ``update(preds (B, D), target (B, D))`` with one row per view; under DDP the per-view values
    of all ranks are gathered (ranks may hold different numbers of views).

    Args:
        output: ``"mean"`` returns the mean similarity (a scalar, loggable with ``self.log``);
            ``"mean_std"`` a dict ``{"mean", "std"}`` (std over views with Bessel's correction,
            0 for one view); ``"per_view"`` the (V,) values.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, output: Literal["mean", "mean_std", "per_view"] = "mean", **kwargs):
        super().__init__(**kwargs)
        if output not in ("mean", "mean_std", "per_view"):
            raise ValueError(f"output must be 'mean', 'mean_std' or 'per_view', got {output!r}")
        self.output = output
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.values.append(hypersphere_similarity(preds.detach(), target.detach()))

    def compute(self) -> Tensor | dict[str, Tensor]:
        values = dim_zero_cat(self.values)
        if values.numel() == 0:
            raise RuntimeError("HypersphereSimilarity.compute() called before any update()")
        if self.output == "per_view":
            return values
        mean = values.mean()
        if self.output == "mean":
            return mean
        std = values.std() if values.numel() > 1 else torch.zeros_like(mean)
        return {"mean": mean, "std": std}
