"""Botsch-Kobbelt remeshing."""

import pytest
import torch

from lit3d.geometry.mesh import validate_mesh
from lit3d.geometry.primitives import IcoSphere
from lit3d.geometry.remesh import mean_edge_length, remesh


def test_remesh_halves_the_edge_length_and_stays_on_the_surface():
    sphere = IcoSphere(subdivisions=2, radius=1.0).build()
    before = mean_edge_length(sphere.vertices, sphere.faces)
    vertices, faces = remesh(sphere.vertices, sphere.faces)
    validate_mesh(vertices, faces)
    assert vertices.shape[0] > 2.5 * sphere.vertices.shape[0]
    assert mean_edge_length(vertices, faces) == pytest.approx(before / 2, rel=0.25)
    # Projected onto the input surface: the polyhedron's radius, between inradius and 1.
    radius = vertices.norm(dim=1)
    assert radius.max() <= 1.0 + 1e-4 and radius.min() > 0.95
    assert vertices.dtype == sphere.vertices.dtype and faces.dtype == torch.long


def test_remesh_to_a_given_length_and_bad_input():
    sphere = IcoSphere(subdivisions=3, radius=1.0).build()
    vertices, faces = remesh(sphere.vertices, sphere.faces, target_edge_length=0.3)
    assert vertices.shape[0] < sphere.vertices.shape[0]  # coarser
    with pytest.raises(ValueError, match="target_edge_length"):
        remesh(sphere.vertices, sphere.faces, target_edge_length=0.0)
    bad = sphere.vertices.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        remesh(bad, sphere.faces)
