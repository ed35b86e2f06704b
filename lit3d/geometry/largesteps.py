"""Large Steps parameterization (Nicolet et al. 2021), as MRD uses for shape reconstruction.

Vertices ``v`` (V, 3) are optimized through differential coordinates ``u = M v`` with
``M = I + λ L`` and ``L = D − A`` the combinatorial (uniform) graph Laplacian of the mesh. A
gradient step on ``u`` moves ``v`` by ``M⁻¹ Δu``: a smooth, "large" step; the final shape is not
forced to be smooth. ``M`` is factorized once per topology (Cholesky, via the ``largesteps``
package and ``cholespy``, CPU and CUDA) and ``v = M⁻¹ u`` is differentiable.
The matching optimizer, :class:`UniformAdam`, divides every step by the largest second moment.
"""

from __future__ import annotations

import atexit

import torch
from torch import Tensor, nn

from lit3d.geometry.topology import edges_from_faces


def laplacian_matrix(num_vertices: int, faces: Tensor) -> Tensor:
    """(V, V) sparse COO combinatorial Laplacian ``D − A`` of the mesh's edge graph, float32."""
    edges = edges_from_faces(faces)
    i, j = edges[:, 0], edges[:, 1]
    degree = torch.bincount(edges.flatten(), minlength=num_vertices).float()
    diag = torch.arange(num_vertices, device=faces.device)
    rows = torch.cat([i, j, diag])
    cols = torch.cat([j, i, diag])
    values = torch.cat([-torch.ones(2 * len(i), device=faces.device), degree.to(faces.device)])
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values,
                                   (num_vertices, num_vertices), check_invariants=True).coalesce()


def system_matrix(num_vertices: int, faces: Tensor, lambda_: float) -> Tensor:
    """(V, V) sparse COO ``M = I + λ L`` (symmetric positive definite for λ >= 0)."""
    if lambda_ < 0:
        raise ValueError(f"the Large Steps λ must be >= 0, got {lambda_}")
    eye = torch.sparse_coo_tensor(
        torch.arange(num_vertices, device=faces.device).repeat(2, 1),
        torch.ones(num_vertices, device=faces.device), (num_vertices, num_vertices),
        check_invariants=True)
    return (eye + lambda_ * laplacian_matrix(num_vertices, faces)).coalesce()


@atexit.register
def _release_solvers() -> None:
    """Frees largesteps' cached Cholesky factorizations before interpreter shutdown (otherwise
    nanobind reports them as leaked)."""
    try:
        from largesteps.parameterize import _cache
    except ImportError:
        return
    _cache.clear()


class LargeSteps(nn.Module):
    """Vertex positions parameterized by Large Steps differential coordinates.

    Args:
        vertices: (V, 3) initial positions, world units.
        faces: (F, 3) long triangles (kept as a buffer: the topology travels with checkpoints).
        lambda_: λ of ``M = I + λ L`` (MRD's dragon: 15; larger is smoother steps).

    ``forward()`` returns the (V, 3) vertices; the parameter is ``u`` (V, 3).
    """

    def __init__(self, vertices: Tensor, faces: Tensor, lambda_: float = 15.0):
        super().__init__()
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
        self.lambda_ = float(lambda_)
        self.num_vertices = int(vertices.shape[0])
        self.register_buffer("faces", faces.long().clone())
        self._matrix: Tensor | None = None
        self.u = nn.Parameter(self.to_differential(vertices.detach().float()))

    @property
    def matrix(self) -> Tensor:
        """``M`` (V, V) sparse, on the faces' device (rebuilt after a device move)."""
        if self._matrix is None or self._matrix.device != self.faces.device:
            self._matrix = system_matrix(self.num_vertices, self.faces, self.lambda_)
        return self._matrix

    def to_differential(self, vertices: Tensor) -> Tensor:
        """(V, 3) positions -> (V, 3) differential coordinates ``M v`` (no gradient)."""
        return (self.matrix @ vertices).detach()

    def forward(self) -> Tensor:
        """(V, 3) vertex positions ``M⁻¹ u`` (differentiable in ``u``)."""
        from largesteps.parameterize import from_differential

        return from_differential(self.matrix, self.u, "Cholesky")


class UniformAdam(torch.optim.Optimizer):
    """Adam with the step of every entry divided by the *largest* second-moment root (Nicolet
    et al. 2021, ``largesteps.optimize.AdamUniform``), with Lightning's ``closure`` protocol and
    parameters without gradients skipped."""

    def __init__(self, params, lr: float = 0.1, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["g1"] = torch.zeros_like(p)
                    state["g2"] = torch.zeros_like(p)
                state["step"] += 1
                g1, g2 = state["g1"], state["g2"]
                g1.mul_(b1).add_(p.grad, alpha=1 - b1)
                g2.mul_(b2).add_(p.grad.square(), alpha=1 - b2)
                m1 = g1 / (1 - b1 ** state["step"])
                m2 = g2 / (1 - b2 ** state["step"])
                p.sub_(m1 / (group["eps"] + m2.sqrt().max()), alpha=group["lr"])
        return loss
