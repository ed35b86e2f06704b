"""The command line: every shipped config loads, --print_config works, a fit leaves its
artifacts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lit3d.cli import main
from lit3d.modules.mei3d import MEI3D
from lit3d.modules.mei3d_population import MEI3DPopulation
from lit3d.modules.mrd_material import MRDMaterial
from lit3d.modules.mrd_shape import MRDShape

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    """In-process CLI runs read ``args``, not pytest's own command line."""
    monkeypatch.setattr(sys, "argv", ["lit3d"])


CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

# Shrinks any 3D-MEI config to seconds: tiny mesh, image and step count.
TINY = [
    "--trainer.max_epochs", "1",
    "--data.init_args.steps_per_epoch", "3",
    "--trainer.enable_progress_bar", "false",
    "--model.init_args.renderer.init_args.image_size", "24",
    "--model.init_args.renderer.init_args.spp", "2",
    "--model.init_args.response_model.init_args.input_size", "24",
    "--model.init_args.eval_spp", "4",
]


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"mei3d_simple_cell.yaml", "mei3d_complex_cell.yaml",
                                         "mei3d_simple_cell_sphere.yaml",
                                         "mei3d_complex_cell_sphere.yaml", "mrd_demo.yaml",
                                         "mei3d_population.yaml", "mei3d_v4.yaml",
                                         "mrd_dragon.yaml", "mrd_material_demo.yaml",
                                         "mrd_material_diffuse.yaml",
                                         "mrd_material_brushed_metal.yaml",
                                         "mrd_material_aurora.yaml",
                                         "mrd_material_translucent.yaml", "mrd_dog.yaml",
                                         "mrd_lion_statue.yaml", "mrd_suzanne.yaml"}


def offline_target(config: Path, tmp_path: Path) -> list[str]:
    """Overrides that replace a config's downloaded target mesh by a small local file and its
    network's downloaded (or private) weights by a random initialization."""
    if "V4EncodingModel" in config.read_text():  # published weights are not public
        return ["--model.init_args.response_model.init_args.weights", "null"]
    if "MRDMaterial" in config.read_text() and "efficientnet_lite0" not in config.read_text():
        return ["--model.init_args.model.init_args.weights", "null"]
    if "MeshFile" not in config.read_text():
        return []
    from lit3d.geometry.io import save_mesh
    from lit3d.geometry.procedural import StarShape

    star = StarShape(subdivisions=2).build()
    path = save_mesh(tmp_path / "target.ply", star.vertices, star.faces)
    return ["--model.init_args.target.init_args.path", str(path),
            "--model.init_args.target.init_args.member", "null",
            "--model.init_args.target.init_args.sha256", "null",
            "--model.init_args.model.init_args.weights", "null"]


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_instantiates(config, tmp_path):
    if "pytorch3d" in config.stem:
        pytest.importorskip("pytorch3d.renderer", reason="PyTorch3D is not installed (optional)")
    cli = main(["--config", str(config), "--trainer.default_root_dir", str(tmp_path),
                "--trainer.logger", "false", *offline_target(config, tmp_path)], run=False)
    assert isinstance(cli.model, (MEI3D, MEI3DPopulation, MRDShape, MRDMaterial))
    assert cli.datamodule is not None and len(cli.datamodule.views) >= 1
    assert cli.trainer.max_epochs >= 1


def test_print_config_resolves_classes():
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", "configs/mei3d_simple_cell.yaml",
         "--print_config"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "class_path: lit3d.modules.MEI3D" in result.stdout
    assert "class_path: lit3d.render.MitsubaRenderer" in result.stdout
    assert "lambda_arap:" in result.stdout


def test_unknown_option_fails_with_a_message():
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", "configs/mei3d_simple_cell.yaml",
         "--model.init_args.lambda_typo", "1"], cwd=ROOT, capture_output=True, text=True,
        timeout=120)
    assert result.returncode != 0
    assert "lambda_typo" in result.stderr


def test_fit_writes_artifacts_and_prints_the_normalized_response_last(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", "configs/mei3d_simple_cell.yaml",
         "--trainer.logger.init_args.save_dir", str(tmp_path),
         "--model.init_args.mesh.init_args.resolution", "8", *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("normalized_response=")
    run = tmp_path / "mei3d_simple_cell" / "version_0"
    for name in ("mesh.ply", "render.png", "object.png", "turntable.webp", "curves.png",
                 "metrics.json", "config.yaml", "metrics.csv"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    printed = dict(item.split("=") for item in last.split())
    assert set(printed) == {"normalized_response", "self_intersections", "area_ratio"}
    for key, value in printed.items():
        assert metrics[key] == pytest.approx(float(value), abs=5e-4), key
    from PIL import Image

    with Image.open(run / "object.png") as figure:
        assert figure.width >= 4 * 512 and figure.height >= 512
    with Image.open(run / "turntable.webp") as animation:
        assert animation.n_frames == 36
    assert metrics["steps"] == 3 and metrics["num_vertices"] == 81
    import trimesh

    mesh = trimesh.load(run / "mesh.ply", process=False)
    assert mesh.vertices.shape == (81, 3) and mesh.faces.shape == (128, 3)


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_other_subcommands_run(subcommand, tmp_path):
    cli = main([subcommand, "--config", str(ROOT / "configs/mei3d_simple_cell.yaml"),
                "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
                "--model.init_args.mesh.init_args.resolution", "8", *TINY[4:]])
    assert isinstance(cli.model, MEI3D)
