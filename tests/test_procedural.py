"""Procedural MRD targets: on their surfaces, closed, and the mesh-file source with URL+checksum."""

import pytest
import torch

import lit3d  # noqa: F401
from lit3d.geometry.io import MeshFile, save_mesh
from lit3d.geometry.procedural import (
    Capsule,
    Peanut,
    RoundedBox,
    StarShape,
    radius_from_sdf,
)
from lit3d.models.weights import sha256_of


def closed(mesh) -> bool:
    import trimesh

    return trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), process=False).is_watertight


def test_star_shape_follows_its_radial_formula():
    star = StarShape(lobes=4, amplitude=0.5, sharpness=4.0, radius=0.7, subdivisions=3)
    mesh = star.build()
    d = mesh.vertices.double() / mesh.vertices.double().norm(dim=-1, keepdim=True)
    c = star.lobe_directions()
    expected = 0.7 * (1 + 0.5 * (d @ c.T).clamp(min=0).pow(4.0).sum(-1))
    assert torch.allclose(mesh.vertices.double().norm(dim=-1), expected, atol=1e-6)
    assert mesh.vertices.shape == (642, 3) and closed(mesh)
    # The lobe tips are where the radius is largest.
    assert float(mesh.vertices.norm(dim=-1).max()) == pytest.approx(0.7 * 1.5, rel=0.02)
    rotated = StarShape(lobes=4, subdivisions=1, seed=3).lobe_directions()
    assert torch.allclose(rotated.norm(dim=-1), torch.ones(4, dtype=torch.float64))
    assert not torch.allclose(rotated, StarShape(lobes=4, subdivisions=1).lobe_directions())


@pytest.mark.parametrize("shape", [RoundedBox(subdivisions=3), Capsule(subdivisions=3),
                                   Peanut(subdivisions=3)])
def test_sdf_shapes_put_every_vertex_on_the_surface(shape):
    mesh = shape.build()
    assert shape.sdf(mesh.vertices.double()).abs().max() < 1e-5
    assert closed(mesh)


def test_rounded_box_extents_and_capsule_length():
    box = RoundedBox(half_size=(0.9, 0.6, 0.45), rounding=0.1, subdivisions=4).build()
    extent = box.vertices.max(0).values
    assert torch.allclose(extent, torch.tensor([0.9, 0.6, 0.45]), atol=0.01)
    capsule = Capsule(radius=0.3, half_length=0.6, subdivisions=4).build()
    assert float(capsule.vertices[:, 2].max()) == pytest.approx(0.9, abs=1e-4)


def test_peanut_has_its_waist():
    peanut = Peanut(radius=0.6, offset=0.45, subdivisions=5).build()
    v = peanut.vertices
    waist = v[v[:, 2].abs() < 0.02][:, :2].norm(dim=1)
    assert float(waist.min()) == pytest.approx((0.6**2 - 0.45**2) ** 0.5, abs=0.015)
    assert float(v[:, 2].max()) == pytest.approx(1.05, abs=1e-4)
    with pytest.raises(ValueError, match="offset < radius"):
        Peanut(radius=0.5, offset=0.5)


def test_radius_from_sdf_checks_its_bracket():
    sphere = lambda p: p.norm(dim=-1) - 1.0  # noqa: E731
    d = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(radius_from_sdf(sphere, d, 3.0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="r_max"):
        radius_from_sdf(sphere, d, 0.5)


def test_mesh_file_from_a_url_is_cached_and_checksummed(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT3D_CACHE", str(tmp_path / "cache"))
    star = StarShape(subdivisions=2).build()
    path = save_mesh(tmp_path / "star.ply", star.vertices, star.faces)
    digest = sha256_of(path)
    mesh = MeshFile(path.as_uri(), sha256=digest, center=False).build()
    assert torch.allclose(mesh.vertices, star.vertices, atol=1e-6)
    assert (tmp_path / "cache" / "star.ply").is_file()
    scaled = MeshFile(str(path), scale=2.0).build()
    lo, hi = scaled.vertices.min(0).values, scaled.vertices.max(0).values
    assert float((hi - lo).norm()) == pytest.approx(2.0, rel=1e-5)
    assert torch.allclose((hi + lo) / 2, torch.zeros(3), atol=1e-6)
    with pytest.raises(ValueError, match="checksum mismatch"):
        MeshFile(str(path), sha256="0" * 64).build()
    with pytest.raises(FileNotFoundError, match="mesh file not found"):
        MeshFile(str(tmp_path / "dragon.ply")).build()
    with pytest.raises(ValueError, match="`path:`"):
        MeshFile("http://127.0.0.1:9/dragon.ply").build()


def test_mesh_file_inside_an_archive(tmp_path, monkeypatch, caplog):
    import logging
    import tarfile

    monkeypatch.setenv("LIT3D_CACHE", str(tmp_path / "cache"))
    star = StarShape(subdivisions=1).build()
    save_mesh(tmp_path / "dragon_recon" / "dragon.ply", star.vertices, star.faces)
    archive = tmp_path / "dragon_recon.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "dragon_recon", arcname="dragon_recon")
    with caplog.at_level(logging.WARNING):
        mesh = MeshFile(archive.as_uri(), member="dragon_recon/dragon.ply", center=False).build()
    assert sha256_of(archive) in caplog.text  # logged so that a config can pin it
    assert torch.allclose(mesh.vertices, star.vertices, atol=1e-6)
    assert (tmp_path / "cache" / "dragon_recon.tar.gz.d" / "dragon_recon" / "dragon.ply").is_file()
    with pytest.raises(ValueError, match="no member"):
        MeshFile(archive.as_uri(), member="dragon_recon/other.ply").build()
