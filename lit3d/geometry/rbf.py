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


#: Exponents below this are raised to it: the kernel there is exp(-80) ≈ 1.8e-35 instead of
#: (almost) 0, an error far below float32's resolution of any displacement, and torch's exp is
#: 8x faster when no input underflows (measured: 16 ms -> 2 ms for the 2401² kernel).
EXP_FLOOR = -80.0

#: :class:`RBFDeformation` keeps the (V, V) squared distances of its rest vertices while they
#: take at most this many bytes (V <= 4096 in float32); larger meshes recompute them per block.
DISTANCE_CACHE_BYTES = 64 * 2**20

#: Largest (rows × K) kernel block the chunked RBF evaluates at once, in bytes (float32).
CHUNK_BYTES = 8 * 2**20


def chunk_rows(num_points: int, num_centers: int, batch: int = 1,
               budget_bytes: int | None = None) -> int:
    """Rows of the (rows, K) kernel block that fit ``budget_bytes`` (default
    :data:`CHUNK_BYTES`); at least 1, at most V."""
    budget = CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(1, min(num_points, budget // max(4 * num_centers * batch, 1)))


_SCRATCH: dict[tuple, Tensor] = {}


def _scratch(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A work buffer kept between calls (one per name, shape, dtype and device): fresh 8 MB
    blocks cost their page faults on every call (measured: 6 of the 15 ms of the default
    2401-vertex field), and allocating them again and again makes glibc's heap grow to
    gigabytes at V = 40k (measured). Only the most recent shape of each name is kept."""
    key = (name, like.dtype, like.device)
    buffer = _SCRATCH.get(key)
    if buffer is None or tuple(buffer.shape) != tuple(shape):
        with torch.inference_mode(False):  # a normal tensor: usable in and out of inference
            buffer = _SCRATCH[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buffer


class _Blocks:
    """The (..., rows, K) blocks of the chunked RBF, computed in place into reused buffers
    (:func:`_scratch`)."""

    def __init__(self, points: Tensor, centers: Tensor, sigmas: Tensor, rows: int,
                 distances: Tensor | None = None):
        self.points, self.centers, self.rows, self.distances = points, centers, rows, distances
        self.c2 = centers.pow(2).sum(-1)  # (K,)
        self.scale = (-0.5 / sigmas.pow(2)).unsqueeze(-2)  # (..., 1, K)
        shape = (*sigmas.shape[:-1], rows, centers.shape[0])
        self.d2 = (None if distances is not None
                   else _scratch("d2", (rows, centers.shape[0]), points))
        self.kernel = _scratch("kernel", shape, sigmas)

    def block(self, start: int) -> tuple[Tensor, Tensor]:
        """(d2 (r, K), kernel (..., r, K)) of points ``start .. start + rows``, in the buffers
        (fresh, smaller ones for a last, shorter block)."""
        p = self.points[start:start + self.rows]
        r = p.shape[0]
        kernel = (self.kernel if r == self.rows
                  else self.kernel.new_empty((*self.kernel.shape[:-2], r, self.centers.shape[0])))
        if self.distances is not None:
            d2 = self.distances[start:start + r]
        else:
            d2 = self.d2 if r == self.rows else self.d2.new_empty((r, self.d2.shape[1]))
            torch.matmul(p, self.centers.T, out=d2)
            d2.mul_(-2.0).add_(p.pow(2).sum(-1, keepdim=True)).add_(self.c2).clamp_(min=0.0)
        torch.mul(d2, self.scale, out=kernel)
        kernel.clamp_(min=EXP_FLOOR).exp_()
        return d2, kernel


class _ChunkedRBF(torch.autograd.Function):
    """Forward: the field block by block; backward: every block's kernel recomputed and the
    analytic gradients accumulated (``∂Δv/∂δ_k = K_vk``, ``∂K_vk/∂σ_k = K_vk d²_vk / σ_k³``),
    in two reused (..., rows, K) buffers."""

    @staticmethod
    def forward(ctx, points, centers, offsets, sigmas, rows, distances, known):
        ctx.rows, ctx.distances = rows, distances
        ctx.save_for_backward(points, centers, offsets, sigmas)
        if known is not None:  # the caller evaluated these inputs before
            return known.clone()
        blocks = _Blocks(points, centers, sigmas, rows, distances)
        out = offsets.new_empty((*offsets.shape[:-2], points.shape[0], 3))
        for i in range(0, points.shape[0], rows):
            _, kernel = blocks.block(i)
            out[..., i:i + rows, :] = kernel @ offsets
        return out

    @staticmethod
    def backward(ctx, grad):
        points, centers, offsets, sigmas = ctx.saved_tensors
        need_offsets, need_sigmas = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        blocks = _Blocks(points, centers, sigmas, ctx.rows, ctx.distances)
        # Accumulated as (..., 3, K): g^T K is a wide matmul, K^T g a slow skinny one.
        d_offsets = offsets.new_zeros((*offsets.shape[:-2], 3, offsets.shape[-2]))
        moments = torch.zeros_like(d_offsets) if need_sigmas else None
        for i in range(0, points.shape[0], ctx.rows):
            d2, kernel = blocks.block(i)
            g_t = grad[..., i:i + ctx.rows, :].transpose(-1, -2)  # (..., 3, r)
            if need_offsets:
                d_offsets += g_t @ kernel  # Σ_v g_v K_vk
            if need_sigmas:
                moments += g_t @ kernel.mul_(d2)  # Σ_v g_v K_vk d²_vk
        d_sigmas = None
        if need_sigmas:
            d_sigmas = (moments.transpose(-1, -2) * offsets).sum(-1) / sigmas.pow(3)
        return (None, None, d_offsets.transpose(-1, -2) if need_offsets else None, d_sigmas,
                None, None, None)


def rbf_displacement_chunked(points: Tensor, centers: Tensor, offsets: Tensor, sigmas: Tensor,
                             rows: int | None = None, distances: Tensor | None = None,
                             known: Tensor | None = None) -> Tensor:
    """:func:`rbf_displacement` evaluated ``rows`` points at a time and recomputed block by
    block in the backward pass, so the (V, K) kernel never exists at once.

    Same arguments and result as :func:`rbf_displacement` (differentiable in ``offsets`` and
    ``sigmas``; ``points`` and ``centers`` are constants), plus ``distances``: the (V, K)
    squared distances of ``points`` to ``centers``, if the caller keeps them (they never change
    when both are the rest mesh; :class:`RBFDeformation` keeps them while they fit
    :data:`DISTANCE_CACHE_BYTES`), else computed block by block. Memory: two reused
    (..., rows, K) buffers (``rows`` defaults to :func:`chunk_rows`: 8 MB blocks); time: the
    kernel is evaluated again in the backward pass, and in place it beats the dense version
    (``bench/rbf_memory.py``). Equal to the dense field within float rounding: every kernel is
    evaluated (exponents floored at :data:`EXP_FLOOR`, no truncation). ``known``: the field's
    value at exactly these inputs, if the caller has it: returned (a copy) without evaluating
    the field again; the backward pass is the same.
    """
    batch = int(offsets[..., 0, 0].numel())
    rows = min(rows or chunk_rows(points.shape[0], centers.shape[0], batch), points.shape[0])
    if distances is not None and tuple(distances.shape) != (points.shape[0], centers.shape[0]):
        raise ValueError(f"distances must be (V, K) = {(points.shape[0], centers.shape[0])}, "
                         f"got {tuple(distances.shape)}")
    return _ChunkedRBF.apply(points.detach(), centers.detach(), offsets, sigmas, int(rows),
                             None if distances is None else distances.detach(),
                             None if known is None else known.detach())


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

    def distances(self) -> Tensor | None:
        """(V, V) squared distances between the rest vertices, computed once and kept (not
        saved in checkpoints) while they fit :data:`DISTANCE_CACHE_BYTES`; else ``None``."""
        rest = self.rest_vertices
        if 4 * rest.shape[0] ** 2 > DISTANCE_CACHE_BYTES:
            return None
        cached = getattr(self, "_distances", None)
        if cached is None or cached.device != rest.device or cached.shape[0] != rest.shape[0]:
            with torch.inference_mode(False), torch.no_grad():  # usable in and out of it
                cached = squared_distances(rest.clone(), rest.clone()).contiguous()
            self._distances = cached
        return cached

    def _state_key(self) -> tuple:
        """Identifies the parameters' current values: the tensors, their storages and version
        counters (every in-place change, an optimizer step or a load, bumps the counter)."""
        return tuple((id(t), t.data_ptr(), t._version)
                     for t in (self.offsets, self.log_sigma, self.rest_vertices))

    def displacement(self) -> Tensor:
        """(..., V, 3) displacement of every rest vertex, in 8 MB blocks recomputed in the
        backward pass (:func:`rbf_displacement_chunked`): memory grows with V, not V² (beyond
        the kept distances of meshes up to 4096 vertices). The last value is kept with the
        parameters' state it was computed at and reused while that state is unchanged (the step
        guard evaluates the field after a step, the next training step needs it again)."""
        key = self._state_key()
        last = getattr(self, "_last_field", None)
        known = last[1] if last is not None and last[0] == key else None
        field = rbf_displacement_chunked(self.rest_vertices, self.rest_vertices, self.offsets,
                                         self.sigma, distances=self.distances(), known=known)
        self._last_field = (key, field.detach())
        return field

    def forward(self) -> Tensor:
        """(..., V, 3) deformed vertices."""
        return self.rest_vertices + self.displacement()


class VertexOffsets(nn.Module):
    """Free per-vertex offsets (no RBF coupling): ``v = v0 + δ``.

    Args:
        rest_vertices, offset_std, batch_shape, generator: as :class:`RBFDeformation`.
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
