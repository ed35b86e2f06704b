"""Large Steps parameterization and its uniform Adam."""

import pytest
import torch

from lit3d.geometry.largesteps import LargeSteps, UniformAdam, laplacian_matrix, system_matrix
from lit3d.geometry.primitives import IcoSphere


@pytest.fixture
def sphere():
    return IcoSphere(subdivisions=2, radius=1.0).build()


def test_laplacian_is_degree_minus_adjacency(sphere):
    v = sphere.vertices.shape[0]
    dense = laplacian_matrix(v, sphere.faces).to_dense()
    adjacency = torch.zeros(v, v)
    for a, b, c in sphere.faces.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            adjacency[i, j] = adjacency[j, i] = 1
    assert torch.equal(dense, torch.diag(adjacency.sum(1)) - adjacency)
    m = system_matrix(v, sphere.faces, 7.0).to_dense()
    assert torch.allclose(m, torch.eye(v) + 7.0 * dense)
    with pytest.raises(ValueError, match="λ"):
        system_matrix(v, sphere.faces, -1.0)


def test_parameterization_round_trips_and_its_gradient_is_the_solve(sphere):
    steps = LargeSteps(sphere.vertices, sphere.faces, lambda_=10.0)
    vertices = steps()
    assert torch.allclose(vertices, sphere.vertices, atol=1e-5)
    weights = torch.randn_like(vertices)
    (vertices * weights).sum().backward()
    m = system_matrix(vertices.shape[0], sphere.faces, 10.0).to_dense().double()
    assert torch.allclose(steps.u.grad.double(), torch.linalg.solve(m, weights.double()),
                          atol=1e-5)


def test_a_step_on_u_moves_vertices_smoothly(sphere):
    """A single-vertex gradient spreads over its neighbourhood (the 'large step')."""
    steps = LargeSteps(sphere.vertices, sphere.faces, lambda_=20.0)
    before = steps().detach()
    pull = torch.zeros_like(before)
    pull[0] = torch.tensor([0.0, 0.0, 1.0])
    (steps() * -pull).sum().backward()
    with torch.no_grad():
        steps.u -= 0.5 * steps.u.grad
    moved = (steps().detach() - before).norm(dim=1)
    assert (moved > 0.05 * moved.max()).sum() > 10  # many vertices move, not just one


def test_uniform_adam_scales_by_the_largest_second_moment_and_supports_closures():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = UniformAdam([p], lr=0.1)
    grads = torch.tensor([1.0, 2.0, -4.0])

    def closure():
        opt.zero_grad()
        loss = (p * grads).sum()
        loss.backward()
        return loss

    opt.step(closure)
    # First step: m1 = g, m2 = g², so the step is lr·g / max|g|.
    assert torch.allclose(p.detach(), -0.1 * grads / 4.0, atol=1e-6)
    q = torch.nn.Parameter(torch.ones(2))
    UniformAdam([q]).step()  # no gradient: skipped
    assert torch.equal(q.detach(), torch.ones(2))
