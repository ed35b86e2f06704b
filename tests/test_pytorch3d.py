"""The PyTorch3D back-end against Mitsuba (skipped where PyTorch3D is not installed:
``bash scripts/setup.sh --pytorch3d``)."""

import pytest
import torch

from lit3d.data.views import overhead_views
from lit3d.geometry.primitives import Sheet
from lit3d.geometry.topology import boundary_vertices
from lit3d.render.mitsuba import MitsubaRenderer

pytest.importorskip("pytorch3d.renderer", reason="PyTorch3D is not installed (optional)")
from lit3d.render.pytorch3d import PyTorch3DRenderer, faces_per_bin  # noqa: E402


def bumpy_sheet(resolution: int, size: float = 2.0):
    """A corrugated sheet inside the overhead view (its rim is the only silhouette)."""
    mesh = Sheet(resolution=resolution, size=size).build()
    vertices = mesh.vertices.clone()
    vertices[:, 2] = 0.15 * torch.sin(4.0 * vertices[:, 0]) * torch.cos(3.0 * vertices[:, 1])
    return vertices, mesh.faces


def test_vertex_gradients_agree_in_direction_with_mitsuba_on_interior_vertices():
    """Same scene, same loss (a fixed random weighting of the image): the vertex gradients of
    the two back-ends point the same way away from the silhouette (cosine >= 0.9)."""
    vertices, faces = bumpy_sheet(24)
    views = overhead_views()
    weights = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    gradients = []
    for renderer in (MitsubaRenderer(image_size=64, spp=256), PyTorch3DRenderer(image_size=64)):
        v = vertices.clone().requires_grad_(True)
        (renderer(v, faces, views, seed=1) * weights).sum().backward()
        gradients.append(v.grad)
    interior = ~boundary_vertices(faces, vertices.shape[0])
    mitsuba, pytorch3d = (g[interior].flatten() for g in gradients)
    cosine = torch.nn.functional.cosine_similarity(mitsuba, pytorch3d, dim=0)
    print(f"cosine of the interior vertex gradients: {float(cosine):.3f}")
    assert cosine >= 0.9


def test_a_40k_face_mesh_renders_without_bin_overflow():
    vertices, faces = bumpy_sheet(142)  # 2 x 142^2 = 40 328 faces
    assert faces.shape[0] > 40_000
    assert faces_per_bin(faces.shape[0]) >= faces.shape[0]
    views = overhead_views()
    image = PyTorch3DRenderer(image_size=64)(vertices, faces, views)
    reference = MitsubaRenderer(image_size=64, spp=64)(vertices, faces, views)
    difference = (image - reference).abs()
    assert torch.isfinite(image).all()
    assert difference.median() < 0.01, float(difference.median())


def test_the_renderer_copies_and_pickles():
    """Object figures render with a deep copy, populations give every unit one: the renderer
    holds no modules."""
    import copy
    import pickle

    vertices, faces = bumpy_sheet(8)
    renderer = PyTorch3DRenderer(image_size=16)
    image = renderer(vertices, faces, overhead_views())
    for clone in (copy.deepcopy(renderer), pickle.loads(pickle.dumps(renderer))):
        assert torch.equal(clone(vertices, faces, overhead_views()), image)
