"""Normalized symmetric Chamfer and two-sided Hausdorff distances between meshes."""

import math

import pytest
import torch

from lit3d.geometry.primitives import IcoSphere
from lit3d.metrics.chamfer import chamfer_distance, sample_surface, surface_distances


def test_chamfer_distance_is_zero_for_the_same_surface_and_grows_with_offset():
    fine = IcoSphere(subdivisions=4, radius=1.0).build()
    same = chamfer_distance(fine.vertices, fine.faces, fine.vertices, fine.faces, 5000)
    assert same < 0.01  # sampling noise only
    bigger = chamfer_distance(1.1 * fine.vertices, fine.faces, fine.vertices, fine.faces, 5000)
    # Radii 1.1 vs 1: every point is ~0.1 from the other surface; diagonal = 2·sqrt(3).
    assert bigger == pytest.approx(0.1 / (2 * math.sqrt(3)), rel=0.15)
    points = sample_surface(fine.vertices, fine.faces, 1000)
    assert torch.allclose(points.norm(dim=1), torch.ones(1000), atol=0.01)
    with pytest.raises(ValueError, match="no area"):
        sample_surface(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 10)


def peanut(waist: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An ico-sphere stretched along x to 1.6 with its middle pinched by ``waist`` (0: none)."""
    mesh = IcoSphere(subdivisions=5, radius=1.0).build()
    v = mesh.vertices.clone()
    v[:, 0] *= 1.6
    v[:, 1:] *= (1 - waist * torch.exp(-v[:, :1] ** 2 / 0.1))
    return v, mesh.faces


def test_hausdorff_catches_a_filled_in_waist_that_chamfer_hardly_sees():
    """The peanut against the same shape with its waist filled in: the gap is 0.4 units at the
    waist only. Chamfer averages it away; Hausdorff measures it."""
    target, faces = peanut(0.4)
    filled, _ = peanut(0.0)
    out = surface_distances(filled, faces, target, faces, 20000)
    diagonal = float((target.max(0).values - target.min(0).values).norm())
    assert out["hausdorff"] == pytest.approx(0.4 / diagonal, rel=0.1)
    assert out["hausdorff"] > 5 * out["chamfer"]
    same = surface_distances(target, faces, target, faces, 20000)
    assert same["hausdorff"] < 0.2 * out["hausdorff"]  # sampling noise: 0.013
    assert out["chamfer"] == chamfer_distance(filled, faces, target, faces, 20000)
