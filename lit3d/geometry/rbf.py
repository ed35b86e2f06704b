"""Gaussian radial-basis-function deformation (3D-MEI paper, Methods).

``Δv = sum_k δ_k · exp(-||v - c_k||² / (2 σ_k²))`` with a learnable offset ``δ_k`` (world units)
and a learnable scale ``σ_k > 0`` (world units) per kernel; the control points ``c_k`` are the
vertices of the initial mesh.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def squared_distances(points: Tensor, centers: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances, (..., V, K), clamped at 0.

    Args:
        points: (..., V, 3).
        centers: (..., K, 3).
    """
    d2 = (
        points.pow(2).sum(-1, keepdim=True)
        - 2.0 * points @ centers.transpose(-1, -2)
        + centers.pow(2).sum(-1).unsqueeze(-2)
    )
    return d2.clamp(min=0.0)


def rbf_displacement(points: Tensor, centers: Tensor, offsets: Tensor, sigmas: Tensor) -> Tensor:
    """Dense Gaussian RBF displacement field evaluated at ``points``.

    Args:
        points: (V, 3) where the field is evaluated (the rest vertices).
        centers: (K, 3) control points ``c_k``.
        offsets: (..., K, 3) offsets ``δ_k``; leading dimensions batch independent deformations.
        sigmas: (..., K) positive scales ``σ_k`` (same leading dimensions as ``offsets``).

    Returns:
        (..., V, 3) displacements ``Δv``. Memory: one (..., V, K) kernel matrix.
    """
    d2 = squared_distances(points, centers)  # (V, K)
    kernel = torch.exp(-d2 / (2.0 * sigmas.pow(2)).unsqueeze(-2))  # (..., V, K)
    return kernel @ offsets


#: Largest (rows × K) kernel block the chunked RBF evaluates at once, in bytes (float32).
CHUNK_BYTES = 8 * 2**20


def chunk_rows(num_points: int, num_centers: int, batch: int = 1,
               budget_bytes: int | None = None) -> int:
    """Rows of the (rows, K) kernel block that fit ``budget_bytes`` (default
    :data:`CHUNK_BYTES`); at least 1, at most V."""
    budget = CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(1, min(num_points, budget // max(4 * num_centers * batch, 1)))


class _Blocks:
    """Reusable (..., rows, K) work buffers for the blocks of the chunked RBF: every block is
    computed in place into the same memory (allocating a fresh block each time makes glibc's
    heap grow to gigabytes at V = 40k, measured, though every block is freed)."""

    def __init__(self, points: Tensor, centers: Tensor, sigmas: Tensor, rows: int):
        self.points, self.centers, self.rows = points, centers, rows
        self.c2 = centers.pow(2).sum(-1)  # (K,)
        self.scale = (-0.5 / sigmas.pow(2)).unsqueeze(-2)  # (..., 1, K)
        shape = (*sigmas.shape[:-1], rows, centers.shape[0])
        self.d2 = points.new_empty((rows, centers.shape[0]))
        self.kernel = sigmas.new_empty(shape)
        self.spare: Tensor | None = None

    def block(self, start: int) -> tuple[Tensor, Tensor]:
        """(d2 (r, K), kernel (..., r, K)) of points ``start .. start + rows``, in the buffers
        (fresh, smaller ones for a last, shorter block)."""
        p = self.points[start:start + self.rows]
        r = p.shape[0]
        d2 = self.d2 if r == self.rows else self.d2.new_empty((r, self.d2.shape[1]))
        kernel = (self.kernel if r == self.rows
                  else self.kernel.new_empty((*self.kernel.shape[:-2], r, self.d2.shape[1])))
        torch.matmul(p, self.centers.T, out=d2)
        d2.mul_(-2.0).add_(p.pow(2).sum(-1, keepdim=True)).add_(self.c2).clamp_(min=0.0)
        torch.mul(d2, self.scale, out=kernel)
        kernel.exp_()
        return d2, kernel

    def work(self, like: Tensor) -> Tensor:
        """A third (..., r, K) buffer, reused."""
        if self.spare is None or self.spare.shape != like.shape:
            self.spare = torch.empty_like(like)
        return self.spare


class _ChunkedRBF(torch.autograd.Function):
    """Forward: the field block by block; backward: every block's kernel recomputed and the
    analytic gradients accumulated (``∂Δv/∂δ_k = K_vk``, ``∂K_vk/∂σ_k = K_vk d²_vk / σ_k³``),
    in three reused (..., rows, K) buffers."""

    @staticmethod
    def forward(ctx, points, centers, offsets, sigmas, rows):
        ctx.rows = rows
        ctx.save_for_backward(points, centers, offsets, sigmas)
        blocks = _Blocks(points, centers, sigmas, rows)
        out = offsets.new_empty((*offsets.shape[:-2], points.shape[0], 3))
        for i in range(0, points.shape[0], rows):
            _, kernel = blocks.block(i)
            out[..., i:i + rows, :] = kernel @ offsets
        return out

    @staticmethod
    def backward(ctx, grad):
        points, centers, offsets, sigmas = ctx.saved_tensors
        need_offsets, need_sigmas = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        blocks = _Blocks(points, centers, sigmas, ctx.rows)
        d_offsets = torch.zeros_like(offsets) if need_offsets else None
        weights = torch.zeros_like(sigmas) if need_sigmas else None
        for i in range(0, points.shape[0], ctx.rows):
            d2, kernel = blocks.block(i)
            g = grad[..., i:i + ctx.rows, :]  # (..., r, 3)
            if need_offsets:
                d_offsets += kernel.transpose(-1, -2) @ g
            if need_sigmas:
                work = blocks.work(kernel)
                torch.matmul(g, offsets.transpose(-1, -2), out=work)  # g_v · δ_k
                work.mul_(kernel).mul_(d2)
                weights += work.sum(-2)
        d_sigmas = weights / sigmas.pow(3) if need_sigmas else None
        return None, None, d_offsets, d_sigmas, None


def rbf_displacement_chunked(points: Tensor, centers: Tensor, offsets: Tensor, sigmas: Tensor,
                             rows: int | None = None) -> Tensor:
    """:func:`rbf_displacement` evaluated ``rows`` points at a time and recomputed block by
    block in the backward pass, so the (V, K) kernel never exists at once.

    Same arguments and result as :func:`rbf_displacement` (differentiable in ``offsets`` and
    ``sigmas``; ``points`` and ``centers`` are constants). Memory: three reused (..., rows, K)
    buffers (``rows`` defaults to :func:`chunk_rows`: 8 MB blocks); time: the kernel is
    evaluated again in the backward pass, yet in place it beats the dense version
    (``bench/rbf_memory.py``: 1.0 s against 3.4 s at V = 10k). Equal to the dense field (not an
    approximation: every kernel is evaluated, no truncation).
    """
    batch = int(offsets[..., 0, 0].numel())
    rows = rows or chunk_rows(points.shape[0], centers.shape[0], batch)
    if rows >= points.shape[0]:
        return rbf_displacement(points, centers, offsets, sigmas)
    return _ChunkedRBF.apply(points.detach(), centers.detach(), offsets, sigmas, int(rows))


class RBFDeformation(nn.Module):
    """Learnable RBF deformation with one kernel at every rest vertex.

    Parameters: ``offsets`` (..., V, 3) and ``log_sigma`` (..., V) so ``σ = exp(log_sigma)`` stays
    positive. Leading ``batch_shape`` dimensions hold independent deformations of the same mesh.

    Args:
        rest_vertices: (V, 3) initial mesh; also the control points.
        sigma: initial σ in world units (same for every kernel).
        offset_std: std (world units) of the random initial offsets; 0 starts at the rest mesh.
        batch_shape: leading dimensions of independent deformations, e.g. ``(N,)`` for N neurons.
        generator: torch generator for the initial offsets (reproducible seeds).
    """

    def __init__(
        self,
        rest_vertices: Tensor,
        sigma: float,
        offset_std: float = 0.0,
        batch_shape: tuple[int, ...] = (),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"RBF sigma must be > 0, got {sigma}")
        rest = rest_vertices.detach().float()
        self.register_buffer("rest_vertices", rest)
        shape = (*batch_shape, rest.shape[0])
        offsets = torch.randn((*shape, 3), generator=generator) * offset_std
        self.offsets = nn.Parameter(offsets)
        self.log_sigma = nn.Parameter(torch.full(shape, math.log(sigma)))

    @property
    def sigma(self) -> Tensor:
        """(..., V) kernel scales in world units."""
        return self.log_sigma.exp()

    def displacement(self) -> Tensor:
        """(..., V, 3) displacement of every rest vertex: dense while the (V, V) kernel fits
        one 8 MB block (V ≤ 1448), else in blocks recomputed in the backward pass
        (:func:`rbf_displacement_chunked`): memory grows with V, not V²."""
        return rbf_displacement_chunked(self.rest_vertices, self.rest_vertices, self.offsets,
                                        self.sigma)

    def forward(self) -> Tensor:
        """(..., V, 3) deformed vertices."""
        return self.rest_vertices + self.displacement()


class VertexOffsets(nn.Module):
    """Free per-vertex offsets (no RBF coupling): ``v = v0 + δ``.

    Args: as :class:`RBFDeformation` (``sigma`` is not used).
    """

    def __init__(
        self,
        rest_vertices: Tensor,
        offset_std: float = 0.0,
        batch_shape: tuple[int, ...] = (),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        rest = rest_vertices.detach().float()
        self.register_buffer("rest_vertices", rest)
        offsets = torch.randn((*batch_shape, *rest.shape), generator=generator) * offset_std
        self.offsets = nn.Parameter(offsets)

    def displacement(self) -> Tensor:
        return self.offsets

    def forward(self) -> Tensor:
        return self.rest_vertices + self.offsets
