"""The paper's scenes as configs: meshes, environment maps and measured BSDFs fetched from a URL
(here a server on 127.0.0.1 serving files the tests make), cached, checksummed, extracted from
an archive laid out as the MRD authors' asset archive; Table 2's settings in each config."""

import functools
import http.server
import logging
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from lit3d.assets import extract_member, fetch_asset
from lit3d.models.weights import sha256_of

ROOT = Path(__file__).resolve().parents[1]
MRD_URL = "https://media.githubusercontent.com/media/ag-perception-wallis-lab/MRD/main/assets.tar.gz"

# Table 2 of the MRD paper: views, lambda, lr, epochs, remesh epochs.
TABLE_2 = {
    "mrd_dragon": (25, 15.0, 0.1, 500, [5, 25, 50, 100, 150, 250, 350, 450]),
    "mrd_lion_statue": (25, 15.0, 0.1, 500, [5, 25, 50, 100, 150, 250, 350, 450]),
    "mrd_dog": (25, 15.0, 0.1, 500, [5, 50, 100, 150, 250, 350, 450]),
    "mrd_suzanne": (8, 25.0, 0.1, 500, [100, 200, 300, 400]),
}
MEMBERS = {"mrd_lion_statue": "assets/models/lion.obj", "mrd_dog": "assets/models/dog.obj",
           "mrd_suzanne": "assets/models/monkey-subdiv.obj"}


@pytest.fixture
def serve():
    """``serve(directory) -> base URL`` of an HTTP server on 127.0.0.1 for that directory;
    ``serve.stop()`` shuts it down (also done at teardown)."""
    servers = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    def start(directory: Path) -> str:
        handler = functools.partial(Quiet, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def stop():
        while servers:
            server = servers.pop()
            server.shutdown()
            server.server_close()

    start.stop = stop
    yield start
    stop()


def quad_box_obj(path: Path) -> Path:
    """An axis-aligned box 2 x 1 x 0.5 written with quads (as OBJ exports often are)."""
    corners = [(x, y, z) for x in (0, 2) for y in (0, 1) for z in (0, 0.5)]
    quads = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in corners)
                    + "".join(f"f {a} {b} {c} {d}\n" for a, b, c, d in quads))
    return path


def write_map(path: Path, image: np.ndarray) -> Path:
    from lit3d.render.backend import bitmap_io_threads, import_mitsuba

    mi, _ = import_mitsuba("llvm_ad_rgb")
    path.parent.mkdir(parents=True, exist_ok=True)
    with bitmap_io_threads():
        mi.Bitmap(np.ascontiguousarray(image, np.float32)).write(str(path))
    return path


def write_measured(path: Path, rgb=(0.8, 0.2, 0.1), n: int = 8, thetas: int = 4) -> Path:
    """A tiny isotropic RGB measured BSDF in RGL's tensor-file layout (uniform microfacet
    distributions, a constant colour ``rgb``)."""
    from lit3d.render.backend import import_mitsuba

    mi, _ = import_mitsuba("llvm_ad_rgb")
    path.parent.mkdir(parents=True, exist_ok=True)
    ones = np.ones((2, thetas, n, n), np.float32)
    mi.tensor_io.write(
        str(path), description=np.frombuffer(b"test material", np.uint8).copy(),
        theta_i=np.linspace(0, np.pi / 2, thetas).astype(np.float32),
        phi_i=np.array([0, 2 * np.pi], np.float32), ndf=np.ones((n, n), np.float32),
        sigma=np.ones((n, n), np.float32), vndf=ones, luminance=ones,
        rgb=ones[:, :, None] * np.asarray(rgb, np.float32)[None, None, :, None, None],
        jacobian=np.array([0], np.uint8))
    return path


@pytest.fixture
def mrd_archive(tmp_path):
    """(archive, sky image): a tar.gz laid out like the MRD asset archive (``./assets/...``
    names, as ``tar -C dir .`` writes them) with a quad box for every object, an HDR map and a
    measured BSDF."""
    tree = tmp_path / "tree"
    for member in MEMBERS.values():
        quad_box_obj(tree / member)
    from lit3d.render.environment import SkyGradient

    sky = SkyGradient(zenith=2.0).image(16)
    write_map(tree / "assets/envmap/hallstatt4_hd.hdr", sky)
    write_measured(tree / "assets/materials/cc_nothern_aurora_rgb.bsdf")
    archive = tmp_path / "served" / "assets.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as t:
        t.add(tree, arcname=".")
    return archive, sky


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT3D_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_asset_downloads_once_verifies_and_extracts(mrd_archive, serve, cache, caplog):
    archive, _ = mrd_archive
    url = serve(archive.parent) + "/assets.tar.gz"
    digest = sha256_of(archive)
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch_asset(url, "0" * 64, "assets/models/dog.obj", what="mesh")
    assert not (cache / "assets.tar.gz").exists()  # a bad download never lands in the cache
    with caplog.at_level(logging.WARNING, logger="lit3d.assets"):
        dog = fetch_asset(url, None, "assets/models/dog.obj", what="mesh")
    assert digest in caplog.text  # logged so that a config can pin it
    assert dog == cache / "assets.tar.gz.d" / "assets/models/dog.obj"
    assert dog.read_text().startswith("v 0 0 0")
    serve.stop()  # from now on only the cache can answer
    assert fetch_asset(url, digest, "./assets/models/dog.obj") == dog
    hdr = fetch_asset(url, digest, "assets/envmap/hallstatt4_hd.hdr")
    assert hdr.is_file() and hdr.parent.name == "envmap"
    with pytest.raises(ValueError, match="files of that name: ./assets/models/dog.obj"):
        fetch_asset(url, digest, "models/dog.obj")
    with pytest.raises(ValueError, match="could not download .*`path:`"):
        fetch_asset(url.replace("assets.tar.gz", "other.tar.gz"))
    with pytest.raises(FileNotFoundError, match="environment map file not found"):
        fetch_asset(str(archive.parent / "missing.hdr"), what="environment map")
    with pytest.raises(ValueError, match="could not read archive"):
        extract_member(write_map(archive.parent / "not_an_archive.exr", np.ones((2, 4, 3))),
                       "x")


def test_environment_map_from_an_archive_url_is_fetched_on_first_use(mrd_archive, serve,
                                                                      cache):
    from lit3d.render.environment import EnvironmentMap

    archive, sky = mrd_archive
    url = serve(archive.parent) + "/assets.tar.gz"
    environment = EnvironmentMap(url, scale=0.5, sha256=sha256_of(archive),
                                 member="assets/envmap/hallstatt4_hd.hdr")
    assert not cache.exists()  # nothing fetched until the map is used
    image = environment.image()
    assert image.shape == sky.shape
    assert np.allclose(image, 0.5 * sky, rtol=0.02, atol=1e-3)  # RGBE keeps ~1% precision
    with pytest.raises(FileNotFoundError, match="environment map not found"):
        EnvironmentMap(cache / "missing.exr")


@pytest.fixture
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lit3d"])


def paper_cli(config: str, archive_url: str, digest: str):
    """The shipped config with its target and map fetched from ``archive_url`` (the dragon,
    downloaded from Stanford as a PLY, takes the archive's dog instead)."""
    from lit3d.cli import main

    M = "--model.init_args."
    dragon = [M + "target.init_args.member", MEMBERS["mrd_dog"],
              M + "target.init_args.triangulate", "true"] if config == "mrd_dragon" else []
    return main(["--config", str(ROOT / "configs" / f"{config}.yaml"),
                 "--trainer.logger", "false", M + "model.init_args.weights", "null",
                 M + "target.init_args.path", archive_url, M + "target.init_args.sha256", digest,
                 *dragon, M + "renderer.init_args.environment.init_args.path", archive_url,
                 M + "renderer.init_args.environment.init_args.sha256", digest], run=False)


@pytest.mark.parametrize("config", sorted(TABLE_2))
def test_paper_shape_configs_hold_table_2_and_load_their_assets(config, mrd_archive, serve,
                                                                 cache, plain_argv):
    from callbacks import DecayLROnRemesh, EarlyStoppingRestoreBest, Remesh
    from lit3d.render.environment import EnvironmentMap

    archive, sky = mrd_archive
    url = serve(archive.parent) + "/assets.tar.gz"
    text = (ROOT / "configs" / f"{config}.yaml").read_text()
    if config in MEMBERS:  # the shipped source: the MRD archive, pinned
        assert MRD_URL in text and sha256_of(archive) not in text
        assert f"member: {MEMBERS[config]}" in text
        assert "sha256: e6fb5092dc5b80a59f62b3d1bd5eafd3289147ddc50d05ab535c172b56afe254" in text
    assert "member: assets/envmap/hallstatt4_hd.hdr" in text

    cli = paper_cli(config, url, sha256_of(archive))
    views, lambda_, lr, epochs, remesh = TABLE_2[config]
    model, trainer = cli.model, cli.trainer
    assert len(cli.datamodule.views) == views
    assert (model.hparams.lambda_, model.hparams.lr, trainer.max_epochs) == (lambda_, lr, epochs)
    callbacks = {type(c): c for c in trainer.callbacks}
    assert list(callbacks[Remesh].epochs) == remesh
    assert callbacks[DecayLROnRemesh].factor == 0.8
    assert callbacks[EarlyStoppingRestoreBest].patience == 50
    # The quad box came out of the archive triangulated, centred, its diagonal scaled to 2.
    assert model.target_faces.shape == (12, 3)
    lo, hi = model.target_vertices.min(0).values, model.target_vertices.max(0).values
    assert float((hi - lo).norm()) == pytest.approx(2.0, rel=1e-5)
    assert torch.allclose((hi + lo) / 2, torch.zeros(3), atol=1e-6)
    environment = model.renderer.environment
    assert isinstance(environment, EnvironmentMap)
    assert np.allclose(environment.image(), sky, rtol=0.02, atol=1e-3)


@pytest.mark.parametrize("name, source", [
    ("hallstatt", MRD_URL),
    ("skybox", "https://dl.polyhaven.org/file/ph-assets/HDRIs/exr/1k/autumn_field_1k.exr"),
    ("garden", "https://dl.polyhaven.org/file/ph-assets/HDRIs/hdr/1k/aloe_farm_shade_house_1k.hdr"),
    ("sunsky", None)])
def test_environment_configs_swap_the_map_of_any_shape_config(name, source, tmp_path,
                                                             plain_argv):
    """``--config configs/environments/<name>.yaml`` after a shape config replaces its map (and
    nothing else); the source URLs are those the config files name (not fetched here)."""
    from lit3d.cli import main
    from lit3d.geometry.io import save_mesh
    from lit3d.geometry.procedural import StarShape

    star = StarShape(subdivisions=1).build()
    mesh = save_mesh(tmp_path / "star.ply", star.vertices, star.faces)
    M = "--model.init_args."
    cli = main(["--config", str(ROOT / "configs" / "mrd_suzanne.yaml"),
                "--config", str(ROOT / "configs" / "environments" / f"{name}.yaml"),
                "--trainer.logger", "false", M + "model.init_args.weights", "null",
                M + "target.init_args.path", str(mesh), M + "target.init_args.sha256", "null",
                M + "target.init_args.member", "null"], run=False)
    environment = cli.model.renderer.environment
    if source is None:
        assert type(environment).__name__ == "SunSky"
    else:
        assert type(environment).__name__ == "EnvironmentMap"
        assert environment.source == source
    assert len(cli.datamodule.views) == 8 and cli.model.hparams.lambda_ == 25.0


def test_measured_bsdf_target_renders_the_file_it_is_given(mrd_archive, serve, cache):
    """A measured BSDF fetched through the archive URL renders with its file's colour: a
    red-dominant material gives red-dominant pixels on the object, a grey one grey pixels."""
    from lit3d.data.views import turntable_views
    from lit3d.render.environment import ConstantEnvironment
    from lit3d.render.material_scene import MaterialRenderer
    from lit3d.render.materials import Measured

    archive, _ = mrd_archive
    url = serve(archive.parent) + "/assets.tar.gz"
    red = Measured(url, sha256_of(archive), "assets/materials/cc_nothern_aurora_rgb.bsdf")
    grey = Measured(str(write_measured(cache.parent / "grey_rgb.bsdf", rgb=(0.5, 0.5, 0.5))))
    renderer = MaterialRenderer(image_size=24, spp=8, environment=ConstantEnvironment(1.0),
                                floor=False)
    views = turntable_views(1)
    red_image = renderer.render_material(red, views, seed=0)[0]
    grey_image = renderer.render_material(grey, views, seed=0)[0]
    centre = (slice(None), slice(8, 16), slice(8, 16))
    r, g, b = red_image[centre].mean(dim=(1, 2)).tolist()
    assert torch.isfinite(red_image).all() and r > 0
    assert r / g == pytest.approx(0.8 / 0.2, rel=0.05) and g / b == pytest.approx(2.0, rel=0.05)
    grey_rgb = grey_image[centre].mean(dim=(1, 2))
    assert float(grey_rgb.max() / grey_rgb.min()) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(FileNotFoundError, match="measured BSDF file not found"):
        Measured(str(cache.parent / "missing_rgb.bsdf"))


@pytest.mark.parametrize("name", ["aurora", "brushed_metal"])
def test_measured_material_configs_replace_the_procedural_target(name, tmp_path, plain_argv):
    from lit3d.cli import main
    from lit3d.render.materials import Measured

    local = write_measured(tmp_path / f"{name}_rgb.bsdf")
    fragment = ROOT / "configs" / "materials" / f"measured_{name}.yaml"
    assert "https://rgl.s3.eu-central-1.amazonaws.com/media/materials/" in fragment.read_text()
    M = "--model.init_args."
    cli = main(["--config", str(ROOT / "configs" / f"mrd_material_{name}.yaml"),
                "--config", str(fragment), "--trainer.logger", "false",
                M + "model.init_args.weights", "null", M + "target.init_args.path", str(local)],
               run=False)
    assert isinstance(cli.model.target, Measured)
    assert cli.model.target.bsdf(None) == {"type": "measured", "filename": str(local)}
