"""Operations through the command line: bad input is one clear error (exit 2, nothing written
to the log dir); ``fit --ckpt_path last`` resumes a crashed run exactly, across remeshes, and
refuses a checkpoint of another config."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit3d.cli import EXIT_BAD_INPUT, EXIT_NON_FINITE, main
from lit3d.render.mitsuba import MitsubaRenderer
from tests.test_cli import ROOT, TINY

MEI = str(ROOT / "configs/mei3d_simple_cell.yaml")
MRD = str(ROOT / "configs/mrd_demo.yaml")
TINY_MEI = [*TINY, "--model.init_args.mesh.init_args.resolution", "8"]
# The MRD demo shrunk to seconds: 4 views at 24 px, a coarse star, one validation per epoch.
TINY_MRD = [
    "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false",
    "--trainer.check_val_every_n_epoch", "1", "--trainer.log_every_n_steps", "1",
    "--data.init_args.num_views", "4",
    "--model.init_args.renderer.init_args.image_size", "24",
    "--model.init_args.renderer.init_args.spp", "2",
    "--model.init_args.renderer.init_args.environment_resolution", "16",
    "--model.init_args.target.init_args.subdivisions", "2",
    "--model.init_args.initial.init_args.subdivisions", "1",
    "--model.init_args.target_spp", "4", "--model.init_args.eval_spp", "2",
    "--model.init_args.chamfer_points", "500",
]


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lit3d"])


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "quad.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    (d / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 1 1 0\nf 1 2 3\n")
    (d / "inf.obj").write_text("v 0 0 0\nv 1 inf 0\nv 1 1 0\nf 1 2 3\n")
    (d / "corrupt.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9"
                                    b"\nproperty float x\nend_header\n\x00\x01")
    (d / "unsorted.yaml").write_text(
        (ROOT / "configs/mrd_demo.yaml").read_text().replace("epochs: [8, 20]",
                                                             "epochs: [20, 8]"))
    return d


def mesh_file(path):
    return ["--model.init_args.mesh", "lit3d.geometry.MeshFile",
            "--model.init_args.mesh.init_args.path", str(path)]


BAD_INPUTS = {
    "missing mesh": (MEI, lambda d: mesh_file(d / "nope.ply"), "mesh file not found"),
    "corrupt mesh": (MEI, lambda d: mesh_file(d / "corrupt.ply"), "could not read mesh file"),
    "NaN vertices": (MEI, lambda d: mesh_file(d / "nan.obj"), "1 vertex is NaN or Inf"),
    "Inf vertices": (MEI, lambda d: mesh_file(d / "inf.obj"), "1 vertex is NaN or Inf"),
    "quad faces": (MEI, lambda d: mesh_file(d / "quad.obj"), "has non-triangle faces"),
    "unknown model": (MRD, lambda d: ["--model.init_args.model.init_args.name", "resnet51"],
                      "unknown model 'resnet51'"),
    "unknown layer": (MRD, lambda d: ["--model.init_args.model.init_args.layer", "blocks.99"],
                      "has no layer 'blocks.99'"),
    "negative lambda (3D-MEI)": (MEI, lambda d: ["--model.init_args.lambda_edge", "-1"],
                                 "lambda_edge must be a finite number >= 0"),
    "negative lambda (Large Steps)": (MRD, lambda d: ["--model.init_args.lambda_", "-2"],
                                      "lambda_ must be >= 0"),
    "unsorted remesh epochs": (None, lambda d: ["--config", str(d / "unsorted.yaml")],
                               "remesh epochs must be strictly increasing"),
    "zero image size": (MEI, lambda d: ["--model.init_args.renderer.init_args.image_size", "0"],
                        "image_size must be a positive number of pixels, got 0"),
    "negative image size": (MRD, lambda d: ["--model.init_args.renderer.init_args.image_size",
                                            "-8"], "image_size must be a positive"),
}


def run_cli(args, capsys):
    """Runs ``python -m lit3d fit ARGS`` in this process; returns (exit status, stderr)."""
    try:
        main(["fit", *args])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_writes_nothing(case, bad_files, tmp_path, capsys):
    config, extra, message = BAD_INPUTS[case]
    logs = tmp_path / "runs"
    args = (["--config", config] if config else []) + extra(bad_files) + [
        "--trainer.logger.init_args.save_dir", str(logs)]
    status, err = run_cli(args, capsys)
    assert status == EXIT_BAD_INPUT, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("lit3d fit: error: ") and message in lines[-1], err
    assert "Traceback" not in err
    assert not logs.exists() or not any(logs.rglob("*"))


def test_the_process_exits_with_status_2_and_one_line(bad_files, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", MEI, *mesh_file(bad_files / "nope.obj"),
         "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lit3d fit: error: mesh file not found: {bad_files / 'nope.obj'}"]  # nothing else
    assert not (tmp_path / "runs").exists()


def last_ckpt(save_dir: Path, name: str, version: int = 0) -> Path:
    return save_dir / name / f"version_{version}" / "checkpoints" / "last.ckpt"


def test_checkpoint_of_another_config_is_refused(tmp_path, capsys):
    first = tmp_path / "first"
    status, err = run_cli(["--config", MEI, *TINY_MEI, "--trainer.logger.init_args.save_dir",
                           str(first)], capsys)
    assert status == 0, err
    ckpt = last_ckpt(first, "mei3d_simple_cell")
    assert ckpt.is_file() and "lit3d_config" in torch.load(ckpt, weights_only=False)
    other = tmp_path / "other"
    status, err = run_cli(["--config", MEI, *TINY_MEI, "--model.init_args.lambda_lap", "5",
                           "--trainer.logger.init_args.save_dir", str(other),
                           "--ckpt_path", str(ckpt)], capsys)
    assert status == EXIT_BAD_INPUT
    assert "was written by another config (model.init_args.lambda_lap: 100.0 in the " \
           "checkpoint, 5.0 now)" in err
    assert not other.exists() or not any(other.rglob("*"))
    status, err = run_cli(["--config", MEI, *TINY_MEI, "--trainer.logger.init_args.save_dir",
                           str(other), "--ckpt_path", str(tmp_path / "absent.ckpt")], capsys)
    assert status == EXIT_BAD_INPUT and "checkpoint not found" in err
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    status, err = run_cli(["--config", MEI, *TINY_MEI, "--trainer.logger.init_args.save_dir",
                           str(other), "--ckpt_path", str(tmp_path / "broken.ckpt")], capsys)
    assert status == EXIT_BAD_INPUT and "could not read checkpoint" in err
    assert not other.exists() or not any(other.rglob("*"))


def test_resume_with_ckpt_path_last_equals_an_uninterrupted_run_across_remeshes(tmp_path,
                                                                                   capsys):
    """The MRD demo (shrunk) remeshes at the start of epochs 1 and 2; one run goes 3 epochs,
    the other "crashes" after 2 and is resumed with ``--ckpt_path last`` (the crash falls
    after the first remesh and before the second)."""
    import trimesh

    def run_cfg(save_dir, epochs, *extra):
        status, err = run_cli(["--config", MRD, "--callbacks.Remesh.epochs", "[1, 2]",
                               *TINY_MRD, "--trainer.max_epochs",
                               str(epochs), "--trainer.deterministic", "true",
                               "--trainer.logger.init_args.save_dir", str(save_dir), *extra],
                              capsys)
        assert status == 0, err[-3000:]

    run_cfg(tmp_path / "straight", 3)
    run_cfg(tmp_path / "crashed", 2)
    run_cfg(tmp_path / "crashed", 3, "--ckpt_path", "last")
    straight = trimesh.load(tmp_path / "straight/mrd_demo/version_0/mesh.ply", process=False)
    resumed = trimesh.load(tmp_path / "crashed/mrd_demo/version_1/mesh.ply", process=False)
    interrupted = trimesh.load(tmp_path / "crashed/mrd_demo/version_0/mesh.ply", process=False)
    assert straight.vertices.shape == resumed.vertices.shape
    assert straight.vertices.shape != interrupted.vertices.shape  # the 2nd remesh happened
    assert abs(straight.vertices - resumed.vertices).max() <= 1e-5
    assert (straight.faces == resumed.faces).all()


class NaNRenderer(MitsubaRenderer):
    """A renderer whose images are all NaN (a broken scene), for the stop-on-NaN test."""

    def render(self, *args, **kwargs):
        return super().render(*args, **kwargs) * float("nan")


def test_consecutive_non_finite_steps_stop_the_run_with_exit_3_and_the_mesh_saved(tmp_path,
                                                                                  capsys):
    import trimesh

    args = ["--config", MEI, *TINY_MEI, "--data.init_args.steps_per_epoch", "14",
            "--model.init_args.renderer", "tests.test_cli_operations.NaNRenderer",
            "--model.init_args.renderer.init_args.image_size", "24",
            "--trainer.logger.init_args.save_dir", str(tmp_path)]
    with pytest.warns(UserWarning, match="step skipped"):
        status, err = run_cli(args, capsys)
    assert status == EXIT_NON_FINITE
    assert "stopped after 10 consecutive steps with a non-finite loss or gradient" in err
    run = tmp_path / "mei3d_simple_cell" / "version_0"
    mesh = trimesh.load(run / "mesh.ply", process=False)
    assert mesh.vertices.shape == (81, 3) and abs(mesh.vertices[:, 2]).max() < 1e-6  # flat
    assert last_ckpt(tmp_path, "mei3d_simple_cell").is_file()


def test_fit_without_checkpointing_writes_no_checkpoint(tmp_path, capsys):
    """``--trainer.enable_checkpointing false``: the config's checkpoint callback is dropped
    (its other callbacks kept) and lit3d adds no ``last.ckpt`` callback of its own (Lightning
    refuses checkpoint callbacks then)."""
    status, err = run_cli(["--config", MEI, *TINY_MEI, "--trainer.enable_checkpointing", "false",
                           "--trainer.logger.init_args.save_dir", str(tmp_path)], capsys)
    assert status == 0, err
    run = tmp_path / "mei3d_simple_cell" / "version_0"
    assert (run / "metrics.json").is_file() and not list(run.rglob("*.ckpt"))


def test_disabling_checkpointing_keeps_the_configs_other_callbacks():
    """MRD's config lists remeshing, LR decay, early stopping and a checkpoint callback: with
    checkpointing off only the checkpoint callback goes."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from callbacks import DecayLROnRemesh, EarlyStoppingRestoreBest, Remesh
    from lit3d.cli import build

    def kinds(extra):
        cli = build(["--config", str(ROOT / "configs/mrd_demo.yaml"), "--trainer.logger", "false",
                     "--model.init_args.model.init_args.weights", "null", *extra])
        return {type(c) for c in cli.trainer.callbacks}

    method = {Remesh, DecayLROnRemesh, EarlyStoppingRestoreBest}
    assert method | {ModelCheckpoint} <= kinds([])
    off = kinds(["--trainer.enable_checkpointing", "false"])
    assert method <= off and not any(issubclass(k, ModelCheckpoint) for k in off)
