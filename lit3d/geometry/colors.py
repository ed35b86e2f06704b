"""Per-vertex colour of a stimulus (the 3D-MEI paper's named extension: optimize appearance
next to shape).

Colours are diffuse reflectance in linear RGB, kept in (0, 1) by a sigmoid of unconstrained
logits; their smoothness is the uniform-Laplacian energy of the colour field over the mesh's
edges (the same formula as the geometric Laplacian regularizer, applied to colours).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lit3d.geometry.regularizers import laplacian_loss


class VertexColors(nn.Module):
    """Learnable (V, 3) albedo, ``sigmoid(logits)``, starting uniform at ``albedo``."""

    def __init__(self, num_vertices: int, albedo: float = 0.8):
        super().__init__()
        if not 0 < albedo < 1:
            raise ValueError(f"starting albedo must be in (0, 1), got {albedo}")
        self.logits = nn.Parameter(torch.full((int(num_vertices), 3),
                                              math.log(albedo / (1 - albedo))))

    def forward(self) -> Tensor:
        """(V, 3) albedo in (0, 1)."""
        return torch.sigmoid(self.logits)


def color_smoothness(colors: Tensor, edges: Tensor) -> Tensor:
    """``1/|V| Σ_i ‖c_i − mean_{j∈N(i)} c_j‖²`` of (..., V, 3) colours over (E, 2) edges."""
    return laplacian_loss(colors, edges)
