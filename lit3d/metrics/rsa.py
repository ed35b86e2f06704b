"""Representational similarity analysis (RSA) with Kendall's τ-b, as in MRD.

For V views, each side's representational similarity matrix (RSM) is the (V, V) cosine similarity
of its L2-normalized latents. RSA compares the two RSMs' strict upper triangles (V(V−1)/2 pairs
of views) with Kendall's τ-b (ties accounted for) and its two-sided p-value, computed by
``scipy.stats.kendalltau`` (exact for small untied samples, asymptotic otherwise).

Similarities are rounded to ``decimals`` (default 10) before ranking, so pairs that are equal
up to floating-point noise (identical views, symmetric scenes) count as the ties they are,
whatever the summation order (BLAS blocking, DDP gathering) that computed them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def similarity_matrix(latents: Tensor) -> Tensor:
    """(V, D) -> (V, V) cosine similarities of the L2-normalized rows, float64."""
    z = F.normalize(latents.double().flatten(1), dim=1)
    return z @ z.T


def upper_triangle(matrix: Tensor) -> Tensor:
    """(V, V) -> (V(V−1)/2,) strict upper triangle, row-major."""
    rows, cols = torch.triu_indices(matrix.shape[0], matrix.shape[1], offset=1,
                                    device=matrix.device)
    return matrix[rows, cols]


def kendall_rsa(preds: Tensor, target: Tensor, decimals: int | None = 10
                ) -> tuple[Tensor, Tensor]:
    """(V, D), (V, D) latents of the same V views -> (τ-b, two-sided p-value) of their RSMs
    (similarities rounded to ``decimals``; ``None`` keeps every bit)."""
    if preds.shape[0] != target.shape[0]:
        raise ValueError(f"need the same views on both sides, got {preds.shape[0]} and "
                         f"{target.shape[0]}")
    if preds.shape[0] < 3:
        raise ValueError(f"RSA needs at least 3 views (2 pairs), got {preds.shape[0]}")
    x = upper_triangle(similarity_matrix(preds)).cpu().numpy()
    y = upper_triangle(similarity_matrix(target)).cpu().numpy()
    if decimals is not None:
        x, y = x.round(decimals), y.round(decimals)
    result = stats.kendalltau(x, y)
    return (torch.tensor(float(result.statistic), dtype=torch.float64),
            torch.tensor(float(result.pvalue), dtype=torch.float64))


class KendallRSA(Metric):
    """Kendall-τ-b RSA between rendered and target views' latents.

    ``update(preds (B, D), target (B, D))`` with row ``i`` of both the same view. Under DDP the
    latents of all ranks are gathered (ranks may hold different numbers of views); τ only depends
    on which render is paired with which target, not on the order of views, so the result equals
    the single-process one. ``compute()`` returns ``{"tau", "p_value"}``.

    Args:
        decimals: similarities are rounded to this many decimals before ranking (ties).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, decimals: int | None = 10, **kwargs):
        super().__init__(**kwargs)
        self.decimals = decimals
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.shape[0] != target.shape[0] or preds.ndim != 2 or target.ndim != 2:
            raise ValueError(f"expected (B, D) latents with equal B, got {tuple(preds.shape)} "
                             f"and {tuple(target.shape)}")
        self.preds.append(preds.detach().flatten(1))
        self.target.append(target.detach().flatten(1))

    def compute(self) -> dict[str, Tensor]:
        tau, p_value = kendall_rsa(dim_zero_cat(self.preds), dim_zero_cat(self.target),
                                   self.decimals)
        return {"tau": tau.to(self.device), "p_value": p_value.to(self.device)}
