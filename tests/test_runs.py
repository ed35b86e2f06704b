"""A run is the unit of work: checkpoints a long run can trust, outputs where the user says,
every analysis command takes the run directory, nothing silent."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit3d.geometry.io import load_mesh
from tests.test_cli_operations import MRD, TINY_MRD

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
# The MRD demo shrunk (tests/test_cli_operations.py), validated every 3 epochs (after epochs 2
# and 5), remeshed at the start of epoch 3, on one thread (bit-reproducible).
RESUMABLE = [*TINY_MRD, "--trainer.max_epochs", "6", "--trainer.check_val_every_n_epoch", "3",
             "--trainer.deterministic", "true", "--callbacks.Remesh.epochs", "[3]",
             "--callbacks.EarlyStoppingRestoreBest.patience", "100"]


def fit(save_dir: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lit3d", "fit", "--config", MRD, *RESUMABLE,
         "--trainer.logger.init_args.save_dir", str(save_dir), *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def final_mesh(save_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    runs = sorted((save_dir / "mrd_demo").glob("version_*"))
    return load_mesh(runs[-1] / "mesh.ply")


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    save_dir = tmp_path_factory.mktemp("whole")
    result = fit(save_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir


@pytest.fixture(scope="module")
def uninterrupted(whole_run):
    return final_mesh(whole_run)


@pytest.mark.parametrize("killed_in", [1, 4, 3], ids=["before-first-validation",
                                                       "between-validations",
                                                       "right-after-remesh"])
def test_a_killed_run_resumes_from_the_last_epoch_and_ends_as_if_never_killed(
        tmp_path, uninterrupted, killed_in):
    """``kill -9`` in epoch k (its second batch); ``fit --ckpt_path last`` resumes from the end
    of epoch k-1 and ends with the uninterrupted run's mesh: before the first validation (no
    monitored checkpoint exists yet), between two validations, and in the epoch a remesh
    started."""
    killed = fit(tmp_path, "--trainer.callbacks+=helpers.KillAt",
                 f"--trainer.callbacks.init_args.epoch={killed_in}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = tmp_path / "mrd_demo" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == killed_in - 1
    resumed = fit(tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stderr
    vertices, faces = final_mesh(tmp_path)
    assert torch.equal(faces, uninterrupted[1])
    assert (vertices - uninterrupted[0]).abs().max() <= 1e-5


def test_sigterm_writes_last_checkpoint_before_the_process_exits(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "lit3d", "fit", "--config", MRD, *RESUMABLE,
         "--trainer.max_epochs", "50", "--trainer.logger.init_args.save_dir", str(tmp_path)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "mrd_demo" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline:  # wait for epoch 0 to end
        time.sleep(0.5)
    epoch_zero = last.stat().st_mtime_ns
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "resume with --ckpt_path" in err
    checkpoint = torch.load(last, weights_only=False)
    assert last.stat().st_mtime_ns > epoch_zero  # written again on the way out
    assert checkpoint["global_step"] >= 4 and checkpoint["epoch"] < 49


def lit3d(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lit3d", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


MEI = str(ROOT / "configs/mei3d_simple_cell.yaml")
TINY_MEI = ["--trainer.max_epochs", "1", "--data.init_args.steps_per_epoch", "3",
            "--model.init_args.renderer.init_args.image_size", "24",
            "--model.init_args.renderer.init_args.spp", "2",
            "--model.init_args.response_model.init_args.input_size", "24",
            "--model.init_args.eval_spp", "4", "--model.init_args.mesh.init_args.resolution", "8"]
QUICK_TUNE = ["--azimuths", "0,15", "--elevations", "0", "--light_azimuths", "0",
              "--light_elevations", "45,90", "--spp", "2"]


@pytest.fixture(scope="module")
def cell67(tmp_path_factory) -> Path:
    """A run of the shipped simple-cell config with a 67-degree cell given on the command
    line (none of the configs has it), under ``--trainer.default_root_dir``."""
    root = tmp_path_factory.mktemp("root")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = lit3d("fit", "--config", MEI, *TINY_MEI, "--trainer.default_root_dir", str(root),
                   "--model.init_args.response_model.init_args.orientation_deg", "67",
                   cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(elsewhere.iterdir())  # nothing in the working directory
    run = root / "runs" / "mei3d_simple_cell" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    return run


def test_a_fit_is_quiet_and_writes_where_it_is_told(cell67):
    log = (cell67 / "config.yaml").read_text()
    assert "orientation_deg: 67.0" in log


def test_fit_output_has_no_library_noise(tmp_path):
    result = lit3d("fit", "--config", MEI, *TINY_MEI, "--trainer.enable_progress_bar", "false",
                   "--trainer.log_every_n_steps", "1",
                   "--trainer.logger.init_args.save_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("artifacts written to") and len(lines) == 2, result.stdout
    assert lines[-1].startswith("normalized_response=")


def test_mrd_fit_output_has_no_library_noise(tmp_path):
    """An MRD fit (frozen network in eval mode, remeshing) prints only lit3d's own lines."""
    result = lit3d("fit", "--config", MRD, *TINY_MRD, "--trainer.max_epochs", "2",
                   "--callbacks.Remesh.epochs", "[1]",
                   "--trainer.logger.init_args.save_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "remeshed" in line], result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("artifacts written to") and len(lines) == 2, result.stdout
    assert lines[-1].startswith("chamfer=")


def test_analysis_commands_take_the_run_directory_and_analyse_the_fitted_unit(cell67, tmp_path):
    from lit3d.commands.fitted import load_fitted
    from lit3d.commands.tune import parser

    module, vertices, _, _, _ = load_fitted(parser().parse_args(["--run", str(cell67)]))
    assert float(module.response_model.params["orientation_deg"][0]) == 67.0
    assert torch.equal(vertices, load_mesh(cell67 / "mesh.ply")[0])
    for command, extra in (("tune", QUICK_TUNE), ("export", ["--spp", "2"]),
                           ("pixel-mei", ["--steps", "3", "--num_seeds", "1", "--spp", "2"])):
        out = tmp_path / command
        result = lit3d(command, "--run", str(cell67), "--out", str(out), *extra)
        assert result.returncode == 0, (command, result.stderr[-3000:])
        assert any(out.iterdir()), command
    sidecar = json.loads((tmp_path / "export" / "stimulus.json").read_text())
    assert sidecar["run"] == str(cell67)
    # the run's own config.yaml works as a config, with the run's mesh
    result = lit3d("tune", "--config", str(cell67 / "config.yaml"), "--mesh",
                   str(cell67 / "mesh.ply"), "--out", str(tmp_path / "again"), *QUICK_TUNE)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_runs_mesh_with_another_config_is_refused_naming_the_difference(cell67, tmp_path):
    result = lit3d("tune", "--config", MEI, "--mesh", str(cell67 / "mesh.ply"), "--out",
                   str(tmp_path / "out"), *QUICK_TUNE)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    head = f"lit3d tune: error: {cell67 / 'mesh.ply'} was fitted with another config ("
    assert lines[0].startswith(head), lines[0]
    shown = lines[0][len(head):].split("; ")[:3]  # the cell's settings lead
    assert ("model.init_args.response_model.init_args.orientation_deg: 67.0 in its run, 45.0 in "
            "--config") in shown, shown
    assert lines[0].endswith(f"analyse it with --run {cell67}")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_of_another_module_is_refused_by_the_analyses(whole_run, tmp_path):
    ckpt = next((whole_run / "mrd_demo").glob("version_*/checkpoints/last.ckpt"))
    result = lit3d("pixel-mei", "--config", MEI, "--ckpt_path", str(ckpt), "--out",
                   str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert ("was written by another config (model.class_path: 'lit3d.modules.MRDShape' in the "
            "checkpoint, 'lit3d.modules.MEI3D' now; ") in lines[0], lines[0]
    assert len(lines[0]) < 400


def test_callback_options_on_the_command_line(tmp_path):
    result = lit3d("fit", "--config", MEI, *TINY_MEI, "--trainer.logger.init_args.save_dir",
                   str(tmp_path), "--callbacks.Remesh.epochs", "[1]")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "lit3d fit: error: --callbacks.Remesh.epochs: the config lists no Remesh callback "
        "(it lists ModelCheckpoint)"]


def test_progress_bars_only_on_a_terminal(monkeypatch, capsys):
    from lit3d.console import progress

    list(progress(range(3), "rendering 3 views"))
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    list(progress(range(3), "rendering 3 views"))
    assert "rendering 3 views" in capsys.readouterr().err


def test_gradcheck_takes_the_run_and_checks_its_final_remeshed_mesh(whole_run):
    """``gradcheck --run`` checks the run's own mesh (remeshed: another topology than the
    config's initial sphere), with the run's config, and gives its verdict (this tiny run's
    coarse 24-pixel mesh is no test of the renderer: the verdict itself is not checked)."""
    from lit3d.analysis.gradcheck import vertex_groups
    from lit3d.cli import build

    run = next((whole_run / "mrd_demo").glob("version_*"))
    vertices, faces = load_mesh(run / "mesh.ply")
    result = lit3d("gradcheck", "--run", str(run), "--views", "1", "--directions", "2",
                   "--spp", "8")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    counts = {line.split(":")[0]: int(line.split(": ")[1].split()[0])
              for line in result.stdout.splitlines()
              if line.startswith(("silhouette:", "interior:"))}
    views = build(["--config", str(run / "config.yaml"), "--trainer.logger", "false"]
                  ).datamodule.views[:1]
    groups = vertex_groups(vertices.float(), faces.long(), views)
    assert vertices.shape[0] != 642  # remeshed
    assert counts == {k: int(g.sum()) for k, g in groups.items() if g.any()}
    assert result.stdout.strip().splitlines()[-1].startswith("gradcheck=")
