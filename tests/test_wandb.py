"""W&B: an offline run writes its run directory with renders, the mesh (Object3D), the config
and the final metrics; a run that cannot go online falls back to offline and says so once."""

import sys
import warnings
from pathlib import Path

import pytest

from lit3d.cli import main
from lit3d.loggers import WandbLogger, online_problem
from tests.test_cli import ROOT, TINY


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    import wandb

    monkeypatch.setattr(sys, "argv", ["lit3d"])
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    yield
    wandb.finish()


def wandb_config(tmp_path: Path, every: int) -> Path:
    text = (ROOT / "configs/loggers/wandb.yaml").read_text()
    text = text.replace("save_dir: runs", f"save_dir: {tmp_path}")
    text = text.replace("media_every_n_epochs: 5", f"media_every_n_epochs: {every}")
    path = tmp_path / "wandb.yaml"
    path.write_text(text)
    return path


def test_offline_run_writes_renders_mesh_config_and_summary(tmp_path, monkeypatch):
    import trimesh
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["fit", "--config", str(ROOT / "configs/mei3d_simple_cell.yaml"),
          "--config", str(wandb_config(tmp_path, every=1)), *TINY,
          "--trainer.max_epochs", "2", "--model.init_args.mesh.init_args.resolution", "8"])
    wandb.finish()  # the command line's process does this at exit
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    renders = sorted(media.rglob("*.png"))
    meshes = sorted(media.rglob("*.glb"))
    listing = sorted(str(f.relative_to(runs[0])) for f in runs[0].rglob("*"))
    assert len(renders) == 3 and len(meshes) == 3, listing  # epochs 0 and 1, and the end
    mesh = trimesh.load(meshes[-1], force="mesh", process=False)
    assert mesh.vertices.shape == (81, 3) and mesh.faces.shape == (128, 3)
    stream = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert len(stream) > 1000, listing
    assert b"lambda_lap" in stream and b"MitsubaRenderer" in stream  # the resolved config
    assert b"normalized_response" in stream and b"val/response" in stream  # summary, curves
    assert (tmp_path / "wandb_runs" / "version_0" / "metrics.json").is_file()  # CSV side


def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_without_login_the_logger_goes_offline_and_says_so_once(tmp_path, monkeypatch):
    no_credentials(monkeypatch, tmp_path)
    assert "not logged in" in online_problem()
    logger = WandbLogger(project="lit3d", save_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="W&B: not logged in.*logging offline") as record:
        run = logger.experiment
        assert logger.experiment is run
    assert len([w for w in record if "W&B:" in str(w.message)]) == 1
    assert run.settings.mode in ("offline", "dryrun")
    run.log({"x": 1.0})


def test_an_unreachable_server_is_named(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    assert "127.0.0.1:9 is unreachable" in online_problem(timeout_s=1.0)


def test_a_failing_wandb_init_falls_back_to_offline(tmp_path, monkeypatch):
    import wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr("lit3d.loggers.online_problem", lambda timeout_s: None)
    real_init = wandb.init

    def init(**kwargs):
        if kwargs.get("mode") != "offline":
            raise wandb.errors.CommError("server said no")
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    logger = WandbLogger(project="lit3d", save_dir=str(tmp_path))
    with pytest.warns(UserWarning, match=r"wandb.init failed \(CommError: server said no\)"):
        run = logger.experiment
    assert run.settings.mode in ("offline", "dryrun")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logger.experiment is run  # no second warning
