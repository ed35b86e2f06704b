"""Normalized symmetric Chamfer distance between meshes."""

import math

import pytest
import torch

from lit3d.geometry.primitives import IcoSphere
from lit3d.metrics.chamfer import chamfer_distance, sample_surface


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
