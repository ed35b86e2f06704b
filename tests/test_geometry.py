"""Geometry: primitives, connectivity, regularizers vs their Appendix-B formulas, RBF vs dense."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lit3d.geometry.mesh import Mesh, validate_mesh
from lit3d.geometry.primitives import IcoSphere, Sheet
from lit3d.geometry.rbf import RBFDeformation, VertexOffsets, rbf_displacement
from lit3d.geometry.regularizers import (
    arap_direction_loss,
    edge_length_loss,
    face_area_loss,
    laplacian_loss,
)
from lit3d.geometry.topology import edges_from_faces, uniform_laplacian


def face_normals(mesh: Mesh) -> torch.Tensor:
    v = mesh.vertices
    f = mesh.faces
    return torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=-1)


# -- primitives -----------------------------------------------------------------------------------
def test_sheet_counts_extent_and_normals_face_camera():
    mesh = Sheet(resolution=4, size=2.0).build()
    assert mesh.vertices.shape == (25, 3) and mesh.faces.shape == (32, 3)
    assert torch.allclose(mesh.vertices[:, :2].abs().amax(0), torch.tensor([1.0, 1.0]))
    assert torch.all(mesh.vertices[:, 2] == 0)
    assert torch.all(face_normals(mesh)[:, 2] > 0)  # towards the overhead camera (+z)


def test_icosphere_counts_radius_and_outward_normals():
    mesh = IcoSphere(subdivisions=2, radius=1.5).build()
    assert mesh.vertices.shape == (162, 3) and mesh.faces.shape == (320, 3)
    assert torch.allclose(mesh.vertices.norm(dim=-1), torch.full((162,), 1.5), atol=1e-5)
    centers = mesh.vertices[mesh.faces].mean(1)
    assert torch.all((face_normals(mesh) * centers).sum(-1) > 0)




def test_primitive_parameter_errors():
    with pytest.raises(ValueError, match="resolution"):
        Sheet(resolution=0)
    with pytest.raises(ValueError, match="radius"):
        IcoSphere(radius=-1.0)


def test_validate_mesh_names_the_problem():
    mesh = Sheet(resolution=2).build()
    bad = mesh.vertices.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        validate_mesh(bad, mesh.faces)
    with pytest.raises(ValueError, match="triangles"):
        validate_mesh(mesh.vertices, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        validate_mesh(mesh.vertices, mesh.faces + 5)


# -- connectivity ----------------------------------------------------------------------------------
def test_edges_of_sheet_and_sphere_match_euler():
    n = 5
    sheet = Sheet(resolution=n).build()
    edges = edges_from_faces(sheet.faces)
    assert edges.shape == (3 * n * n + 2 * n, 2)
    assert torch.all(edges[:, 0] < edges[:, 1])
    sphere = IcoSphere(subdivisions=2).build()
    e = edges_from_faces(sphere.faces).shape[0]
    assert sphere.num_vertices - e + sphere.num_faces == 2  # genus 0


def test_laplacian_of_isolated_vertex_is_zero():
    vertices = torch.randn(4, 3)
    edges = torch.tensor([[0, 1], [1, 2]])
    lap = uniform_laplacian(vertices, edges)
    assert torch.all(lap[3] == 0)
    assert torch.allclose(lap[1], vertices[1] - (vertices[0] + vertices[2]) / 2)


# -- regularizers vs direct transcriptions of Appendix B -------------------------------------------
def reference_edges(faces):
    pairs = ((0, 1), (1, 2), (2, 0))
    return sorted({tuple(sorted((int(f[a]), int(f[b])))) for f in faces for a, b in pairs})


def reference_laplacian(v, faces):
    neighbours = {i: set() for i in range(len(v))}
    for i, j in reference_edges(faces):
        neighbours[i].add(j)
        neighbours[j].add(i)
    total = 0.0
    for i in range(len(v)):
        mean = sum(v[j] for j in neighbours[i]) / len(neighbours[i])
        total += float(((v[i] - mean) ** 2).sum())
    return total / len(v)


def reference_edge(v, faces):
    lengths = [float((v[i] - v[j]).norm()) for i, j in reference_edges(faces)]
    mean = sum(lengths) / len(lengths)
    return sum((length - mean) ** 2 for length in lengths) / len(lengths)


def reference_area(v, faces):
    areas = [0.5 * float(torch.linalg.cross(v[j] - v[i], v[k] - v[i]).norm())
             for i, j, k in faces.tolist()]
    mean = sum(areas) / len(areas)
    return sum((a - mean) ** 2 for a in areas) / len(areas)


def reference_arap(v, v0, faces):
    total, edges = 0.0, reference_edges(faces)
    for i, j in edges:
        e = v[i] - v[j]
        unit = (v0[i] - v0[j]) / (v0[i] - v0[j]).norm()
        residual = e - (e @ unit) * unit
        total += float((residual**2).sum())
    return total / len(edges)


def test_regularizers_match_formulas(random_mesh):
    v0, faces = random_mesh.vertices.double(), random_mesh.faces
    noise = torch.randn(v0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    v = v0 + 0.05 * noise
    edges = edges_from_faces(faces)
    expected = reference_laplacian(v, faces)
    assert laplacian_loss(v, edges).item() == pytest.approx(expected, rel=1e-10)
    assert edge_length_loss(v, edges).item() == pytest.approx(reference_edge(v, faces), rel=1e-10)
    assert face_area_loss(v, faces).item() == pytest.approx(reference_area(v, faces), rel=1e-10)
    assert arap_direction_loss(v, v0, edges).item() == pytest.approx(
        reference_arap(v, v0, faces), rel=1e-10)
    # Non-trivial values (a test of zeros would pass for a broken formula too).
    assert min(laplacian_loss(v, edges), edge_length_loss(v, edges), face_area_loss(v, faces),
               arap_direction_loss(v, v0, edges)) > 1e-6


def test_arap_ignores_scaling_and_edge_loss_ignores_translation(random_mesh):
    v0 = random_mesh.vertices.double()
    edges = edges_from_faces(random_mesh.faces)
    assert arap_direction_loss(2.5 * v0, v0, edges).item() == pytest.approx(0.0, abs=1e-20)
    shifted = v0 + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    expected = edge_length_loss(v0, edges).item()
    assert edge_length_loss(shifted, edges).item() == pytest.approx(expected)


def test_regularizers_batch_like_single(random_mesh):
    v0, faces = random_mesh.vertices, random_mesh.faces
    edges = edges_from_faces(faces)
    batch = v0 + 0.05 * torch.randn(3, *v0.shape, generator=torch.Generator().manual_seed(3))
    for fn in (lambda v: laplacian_loss(v, edges), lambda v: edge_length_loss(v, edges),
               lambda v: face_area_loss(v, faces), lambda v: arap_direction_loss(v, v0, edges)):
        batched = fn(batch)
        assert batched.shape == (3,)
        assert torch.allclose(batched, torch.stack([fn(b) for b in batch]), rtol=1e-5, atol=1e-9)


def test_regularizer_gradcheck(random_mesh):
    v0, faces = random_mesh.vertices.double(), random_mesh.faces
    edges = edges_from_faces(faces)
    v = (v0 + 0.05 * torch.randn(v0.shape, generator=torch.Generator().manual_seed(4),
                                 dtype=torch.float64)).requires_grad_(True)
    assert gradcheck(lambda x: laplacian_loss(x, edges), (v,))
    assert gradcheck(lambda x: edge_length_loss(x, edges), (v,))
    assert gradcheck(lambda x: face_area_loss(x, faces), (v,))
    assert gradcheck(lambda x: arap_direction_loss(x, v0, edges), (v,))


# -- RBF deformation -------------------------------------------------------------------------------
def dense_rbf_reference(points, centers, offsets, sigmas):
    """Δv = Σ_k δ_k exp(-||v - c_k||² / (2 σ_k²)), one kernel at a time."""
    out = torch.zeros_like(points)
    for k in range(centers.shape[0]):
        weight = torch.exp(-((points - centers[k]) ** 2).sum(-1) / (2 * sigmas[k] ** 2))
        out = out + weight[:, None] * offsets[k]
    return out


def test_rbf_matches_dense_reference(random_mesh):
    g = torch.Generator().manual_seed(5)
    v = random_mesh.vertices
    offsets = 0.1 * torch.randn(v.shape, generator=g)
    sigmas = 0.2 + 0.3 * torch.rand(v.shape[0], generator=g)
    ours = rbf_displacement(v, v, offsets, sigmas)
    assert torch.allclose(ours, dense_rbf_reference(v, v, offsets, sigmas), atol=1e-5)
    batched = rbf_displacement(v, v, offsets.expand(2, -1, -1), sigmas.expand(2, -1))
    assert batched.shape == (2, *v.shape) and torch.allclose(batched[1], ours, atol=1e-6)


def test_rbf_gradcheck_offsets_and_sigmas(random_mesh):
    v = random_mesh.vertices.double()[:20]
    g = torch.Generator().manual_seed(6)
    offsets = (0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    sigmas = (0.3 + 0.3 * torch.rand(20, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert gradcheck(lambda d, s: rbf_displacement(v, v, d, s), (offsets, sigmas))


@pytest.mark.parametrize("kept", [False, True], ids=["distances_per_block", "distances_kept"])
@pytest.mark.parametrize("batch", [(), (2,)], ids=["single", "batched"])
def test_chunked_rbf_equals_the_dense_field_and_its_gradients(batch, kept):
    """Blocks of 37 rows (uneven split of 600 points), recomputed in backward, with the squared
    distances computed per block or handed in: same values and gradients as the dense (V, K)
    kernel within 1e-5."""
    from lit3d.geometry.rbf import rbf_displacement_chunked, squared_distances

    g = torch.Generator().manual_seed(7)
    points = torch.rand(600, 3, generator=g)
    offsets = 0.1 * torch.randn((*batch, 600, 3), generator=g)
    sigmas = 0.05 + 0.2 * torch.rand((*batch, 600), generator=g)
    weights = torch.randn((*batch, 600, 3), generator=g)

    def run(fn):
        d = offsets.clone().requires_grad_(True)
        s = sigmas.clone().requires_grad_(True)
        out = fn(points, points, d, s)
        (out * weights).sum().backward()
        return out.detach(), d.grad, s.grad

    dense = run(rbf_displacement)
    distances = squared_distances(points, points) if kept else None
    chunked = run(lambda *a: rbf_displacement_chunked(*a, rows=37, distances=distances))
    for a, b in zip(dense, chunked):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_rbf_module_reuses_its_last_field_only_while_the_parameters_are_unchanged(monkeypatch):
    """A no-grad evaluation (the step guard's) followed by a differentiable one at the same
    parameters computes the field once, with the same values and gradients as computing it
    again; every in-place change (an optimizer step, a load, a partial undo) is seen."""
    from lit3d.geometry import rbf
    from lit3d.geometry.primitives import Sheet

    computed = []
    original = rbf._Blocks.__init__
    monkeypatch.setattr(rbf._Blocks, "__init__",
                        lambda self, *a, **k: computed.append(1) or original(self, *a, **k))
    sheet = Sheet(8, 2.0).build()
    module = rbf.RBFDeformation(sheet.vertices, sigma=0.3, offset_std=0.05,
                                generator=torch.Generator().manual_seed(0))
    fresh = rbf.RBFDeformation(sheet.vertices, sigma=0.3)
    weights = torch.randn(sheet.vertices.shape, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)

    def reference():  # the field of fresh parameters equal to the module's
        fresh.load_state_dict(module.state_dict())
        out = fresh()
        (out * weights).sum().backward()
        grads = [fresh.offsets.grad.clone(), fresh.log_sigma.grad.clone()]
        fresh.zero_grad()
        return out.detach(), grads

    for step in range(4):
        with torch.no_grad():
            guarded = module()  # the guard's evaluation
        computed.clear()
        out = module()
        (out * weights).sum().backward()
        assert len(computed) == 1  # the backward pass only: the forward reused the field
        expected, grads = reference()
        torch.testing.assert_close(out.detach(), expected, rtol=0, atol=0)
        torch.testing.assert_close(guarded, expected, rtol=0, atol=0)
        for got, want in zip([module.offsets.grad, module.log_sigma.grad], grads):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        optimizer.step()
        optimizer.zero_grad()
        if step == 2:  # a partial undo, as the step guard does
            with torch.no_grad():
                module.offsets[:5] = 0.0
    with torch.no_grad():
        module.log_sigma.add_(0.1)
    expected, _ = reference()
    torch.testing.assert_close(module().detach(), expected, rtol=0, atol=0)


def test_chunked_rbf_gradcheck_and_the_module_chunks_large_meshes(monkeypatch):
    from lit3d.geometry import rbf
    from lit3d.geometry.primitives import Sheet

    g = torch.Generator().manual_seed(8)
    v = torch.rand(23, 3, generator=g, dtype=torch.float64)
    offsets = (0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    sigmas = (0.3 + 0.3 * torch.rand(23, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert gradcheck(lambda d, s: rbf.rbf_displacement_chunked(v, v, d, s, rows=5),
                     (offsets, sigmas))
    kept = rbf.squared_distances(v, v)
    assert gradcheck(lambda d, s: rbf.rbf_displacement_chunked(v, v, d, s, rows=5,
                                                               distances=kept),
                     (offsets, sigmas))
    calls = []
    monkeypatch.setattr(rbf, "CHUNK_BYTES", 200 * 4 * 3721)  # 200-row blocks of a 3721-vertex mesh
    original = rbf._Blocks.block

    def block(self, start):
        d2, kernel = original(self, start)
        calls.append(kernel.shape[-2])
        return d2, kernel

    monkeypatch.setattr(rbf._Blocks, "block", block)
    mesh = Sheet(resolution=60).build()
    for cache_bytes in (0, 64 * 2**20):  # distances recomputed per block, or kept (3721² fits)
        monkeypatch.setattr(rbf, "DISTANCE_CACHE_BYTES", cache_bytes)
        calls.clear()
        module = RBFDeformation(mesh.vertices, sigma=0.1,
                                offset_std=0.01, generator=torch.Generator().manual_seed(0))
        out = module()
        assert (module.distances() is not None) == (cache_bytes > 0)
        assert max(calls) == 200 and sum(calls) == 3721  # 18 blocks of 200 and one of 121
        dense = mesh.vertices + rbf.rbf_displacement(mesh.vertices, mesh.vertices,
                                                     module.offsets, module.sigma)
        torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-6)


def test_rbf_module_starts_at_rest_keeps_sigma_positive_and_seeds_differ(random_mesh):
    v = random_mesh.vertices
    module = RBFDeformation(v, sigma=0.3)
    assert torch.equal(module(), v)
    module.log_sigma.data.fill_(-50.0)
    assert torch.all(module.sigma > 0)
    a = RBFDeformation(v, 0.3, offset_std=0.01, generator=torch.Generator().manual_seed(0))
    b = RBFDeformation(v, 0.3, offset_std=0.01, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a(), b())
    with pytest.raises(ValueError, match="sigma"):
        RBFDeformation(v, sigma=0.0)


def test_rbf_single_offset_moves_its_neighbourhood_smoothly():
    mesh = Sheet(resolution=10).build()
    module = RBFDeformation(mesh.vertices, sigma=0.2)
    centre = int(torch.argmin(mesh.vertices.norm(dim=-1)))
    module.offsets.data[centre] = torch.tensor([0.0, 0.0, 0.1])
    dz = module()[:, 2]
    r = mesh.vertices.norm(dim=-1)
    assert dz[centre].item() == pytest.approx(0.1, rel=1e-5)
    assert torch.allclose(dz, 0.1 * torch.exp(-r**2 / (2 * 0.2**2)), atol=1e-6)


def test_vertex_offsets():
    v = torch.randn(10, 3)
    module = VertexOffsets(v)
    module.offsets.data[2] = 1.0
    assert torch.equal(module()[2], v[2] + 1.0) and torch.equal(module()[0], v[0])


def test_rbf_sigma_scale_is_the_kernel_width():
    # One kernel: the displacement at distance σ is exp(-1/2) of the offset.
    centers = torch.zeros(1, 3)
    points = torch.tensor([[0.3, 0.0, 0.0]])
    d = rbf_displacement(points, centers, torch.tensor([[1.0, 0, 0]]), torch.tensor([0.3]))
    assert d[0, 0].item() == pytest.approx(math.exp(-0.5), rel=1e-6)


def test_rbf_works_in_and_after_inference_mode():
    """Its reused work buffers and kept distances are made outside inference mode (Lightning
    validates under ``torch.inference_mode``; training goes on afterwards)."""
    from lit3d.geometry import rbf
    from lit3d.geometry.primitives import Sheet

    rbf._SCRATCH.clear()
    module = RBFDeformation(Sheet(resolution=6).build().vertices, sigma=0.2, offset_std=0.01)
    with torch.inference_mode():
        inferred = module()
    out = module()
    out.sum().backward()
    torch.testing.assert_close(out.detach(), inferred.clone())
    assert module.offsets.grad is not None and torch.isfinite(module.offsets.grad).all()
