"""MRD shape reconstruction: views datamodule, losses, metamer summary, callbacks, a tiny fit."""

import json

import lightning.pytorch as pl
import pytest
import torch

import lit3d  # noqa: F401
from callbacks import DecayLROnRemesh, EarlyStoppingRestoreBest, FitArtifacts, Remesh
from callbacks.remesh import check_epochs
from helpers import TinyNet, trainer
from lit3d.data.fibonacci import FibonacciViewsDataModule
from lit3d.data.rig import EpochShuffle
from lit3d.geometry.largesteps import UniformAdam
from lit3d.geometry.primitives import IcoSphere
from lit3d.geometry.procedural import StarShape
from lit3d.losses import latent_loss, pixel_mae
from lit3d.metrics.metamer import metamer_summary, read_baseline
from lit3d.modules.mrd_shape import MRDShape
from lit3d.render.environment import SunSky
from lit3d.render.mitsuba import MitsubaEnvironmentRenderer
from lit3d.render.tonemap import display


def tiny_mrd(**kwargs) -> MRDShape:
    defaults = dict(
        target=StarShape(lobes=4, amplitude=0.4, radius=0.8, subdivisions=3),
        initial=IcoSphere(subdivisions=2, radius=1.0),
        renderer=MitsubaEnvironmentRenderer(environment=SunSky(sun_radiance=200.0),
                                            environment_resolution=32, image_size=24, spp=2),
        model=TinyNet(), lambda_=10.0, lr=0.05, target_spp=16, eval_spp=8,
        chamfer_points=2000,
    )
    defaults.update(kwargs)
    return MRDShape(**defaults)


# -- views ------------------------------------------------------------------------------------
def test_epoch_shuffle_visits_every_view_in_a_reproducible_order_per_epoch():
    sampler = EpochShuffle(25, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(25)) and first == list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(25))
    assert list(EpochShuffle(25, seed=4)) != first


def test_fibonacci_datamodule_pairs_indices_with_their_views():
    dm = FibonacciViewsDataModule(num_views=7, distance=3.0, batch_size=2)
    index, views = next(iter(dm.train_dataloader()))
    assert index.shape == (2,) and len(views) == 2
    assert torch.allclose(views.camera_position, dm.views.camera_position[index])
    index, views = next(iter(dm.val_dataloader()))
    assert index.tolist() == list(range(7))
    assert torch.allclose(views.camera_position.norm(dim=-1), torch.full((7,), 3.0))
    with pytest.raises(ValueError, match="num_views"):
        FibonacciViewsDataModule(num_views=0)


# -- losses and criterion ---------------------------------------------------------------------
def test_pixel_and_latent_losses():
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert pixel_mae(a, b) == pytest.approx(float((a - b).abs().mean()))
    with pytest.raises(ValueError, match="differ"):
        pixel_mae(a, b[:1])
    net = TinyNet().requires_grad_(False)
    target = net(display(b))
    expected = 1 - torch.nn.functional.cosine_similarity(net(display(a)), target).mean()
    assert latent_loss(net, a, target) == pytest.approx(float(expected), abs=1e-6)
    assert latent_loss(net, b, target) == pytest.approx(0.0, abs=1e-6)


def test_latent_loss_takes_the_networks_own_distance():
    from lit3d.models import VisionModel
    from lit3d.models.base import LatentDistance

    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    lpips = VisionModel("lpips_vgg", weights=None, input_size=32)
    assert isinstance(lpips, LatentDistance) and not isinstance(TinyNet(), LatentDistance)
    with torch.no_grad():
        target = lpips(display(b))
        latents = lpips(display(a))
        squared = (latents - target).pow(2).sum(1).mean()  # LPIPS: not 1 - cosine
        assert latent_loss(lpips, a, target) == pytest.approx(float(squared), rel=1e-5)
        cosine = 1 - torch.nn.functional.cosine_similarity(latents, target).mean()
        assert float(squared) != pytest.approx(float(cosine), rel=1e-2)


def test_metamer_summary_takes_the_peak_epoch_and_compares_with_the_baseline(tmp_path):
    history = [{"epoch": -1, "similarity": 0.5, "per_view": [0.5]},
               {"epoch": 0, "similarity": 0.7, "per_view": [0.7], "rsa_tau": 0.2, "rsa_p": 0.1},
               {"epoch": 5, "similarity": 0.9, "per_view": [0.9], "rsa_tau": 0.6, "rsa_p": 0.01},
               {"epoch": 9, "similarity": 0.8, "per_view": [0.8], "rsa_tau": 0.5, "rsa_p": 0.02}]
    summary = metamer_summary(history, {"top_similarity": 0.85}, "tiny", "latent")
    assert summary["epoch"] == 5 and summary["top_similarity"] == 0.9
    assert summary["rsa_tau"] == 0.6 and summary["rsa_p"] == 0.01
    assert summary["initial_similarity"] == 0.5 and summary["final_similarity"] == 0.8
    assert summary["top_baseline_similarity"] == 0.85 and summary["metamer"] is True
    assert metamer_summary(history, {"top_similarity": 0.95})["metamer"] is False
    assert metamer_summary(history)["metamer"] is None
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"top_similarity": 0.8, "network": "tiny"}))
    assert read_baseline(tmp_path, "tiny")["top_similarity"] == 0.8
    with pytest.raises(ValueError, match="same network"):
        read_baseline(path, "resnet50")
    with pytest.raises(FileNotFoundError, match="baseline summary not found"):
        read_baseline(tmp_path / "nope.json")
    path.write_text("{}")
    with pytest.raises(ValueError, match="top_similarity"):
        read_baseline(path)


# -- callbacks --------------------------------------------------------------------------------
def test_remesh_epochs_are_checked_and_the_vertex_count_is_capped():
    assert check_epochs([5, 25, 50]) == [5, 25, 50]
    with pytest.raises(ValueError, match="increasing"):
        Remesh(epochs=[25, 5])
    with pytest.raises(ValueError, match="increasing"):
        Remesh(epochs=[5, 5])
    with pytest.raises(ValueError, match=">= 0"):
        Remesh(epochs=[-1])
    remesh = Remesh(epochs=[1], edge_length_factor=0.5, max_vertices=1000)
    assert remesh.target_edge_length(0.1, 100) == pytest.approx(0.05)
    assert remesh.target_edge_length(0.1, 1000) == pytest.approx(0.1)  # 4x would exceed the cap
    with pytest.raises(ValueError, match="factor"):
        DecayLROnRemesh(factor=1.5)


def test_fit_remeshes_decays_the_lr_restores_the_best_mesh_and_writes_the_summary(tmp_path):
    pl.seed_everything(0)
    module = tiny_mrd()
    best_meshes = []

    class Spy(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            best_meshes.append(pl_module.shape.num_vertices)

    stopper = EarlyStoppingRestoreBest(patience=50)
    t = trainer(tmp_path, [Remesh(epochs=[1], max_vertices=5000), DecayLROnRemesh(0.8), stopper,
                           Spy(), FitArtifacts()], max_epochs=3)
    t.fit(module, datamodule=FibonacciViewsDataModule(num_views=6, distance=4.0))
    # Remeshed once at epoch 1 (162 vertices -> about 4x), optimizer rebuilt on the new u.
    assert module.remesh_count == 1 and best_meshes[0] == 162 and best_meshes[1] > 400
    optimizer = t.optimizers[0]
    assert isinstance(optimizer, UniformAdam)
    assert optimizer.param_groups[0]["params"][0].shape == (best_meshes[-1], 3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.8)
    assert float(module.lr_scale) == pytest.approx(0.8)
    # The restored mesh is the snapshot of the best epoch.
    assert stopper.best is not None
    assert torch.equal(module.faces, stopper.best["faces"])
    assert torch.allclose(module.vertices(), stopper.best["vertices"], atol=1e-4)
    # History: the initial mesh (epoch -1) and every epoch.
    assert [h["epoch"] for h in module.history] == [-1, 0, 1, 2]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("epoch", "top_similarity", "top_baseline_similarity", "rsa_tau", "rsa_p",
                "metamer", "chamfer", "hausdorff", "initial_similarity",
                "per_view_similarity"):
        assert key in summary
    assert len(summary["per_view_similarity"]) == 6
    assert 0 < summary["chamfer"] < 0.2
    assert summary["hausdorff"] > summary["chamfer"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["chamfer"] == summary["chamfer"]
    assert metrics["hausdorff"] == summary["hausdorff"]
    from lit3d.figures import read_description

    render = read_description(tmp_path / "render.png")["axes"]
    assert [ax["ylabel"] for ax in render if ax["ylabel"]] == ["reconstruction", "target"]
    assert render[0]["title"] == "reconstruction, view 0"
    curves = read_description(tmp_path / "curves.png")
    assert curves["axes"][-1]["xlabel"] == "epoch" and "Chamfer" in curves["title"]
    titles = [ax["title"] for ax in curves["axes"]]
    assert titles[0] == "training loss (mean over the epoch)"
    assert any(t.startswith("hypersphere similarity") for t in titles)
    assert all("remesh" in ax["legend"] for ax in curves["axes"])


def test_pixel_fit_moves_the_sphere_towards_the_target(tmp_path):
    pl.seed_everything(0)
    module = tiny_mrd(model=None, lr=0.1)
    before = module.final_evaluation()["chamfer"]
    trainer(tmp_path, max_epochs=8, limit_val_batches=0).fit(
        module, datamodule=FibonacciViewsDataModule(num_views=6, distance=4.0))
    # Measured 0.75-0.77 x before (4 or 8 epochs; threads reorder the gradient sums).
    assert module.final_evaluation()["chamfer"] < 0.85 * before


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="needs a model"):
        tiny_mrd(model=None, loss="latent")
    with pytest.raises(ValueError, match="unknown loss"):
        tiny_mrd(loss="l2")
    with pytest.raises(ValueError, match="lambda_"):
        tiny_mrd(lambda_=-1.0)
    with pytest.raises(ValueError, match="lr"):
        tiny_mrd(lr=0.0)


@pytest.mark.parametrize("crash_after", [1, 2], ids=["before-remesh", "after-remesh"])
def test_resume_from_last_checkpoint_matches_an_uninterrupted_run(tmp_path, crash_after):
    """A run stopped after ``crash_after`` epochs and resumed with ``ckpt_path="last"`` ends with
    the vertices of an uninterrupted run, also when the remesh (epoch 1) falls before or after
    the crash: topology, Large Steps state, optimizer moments and the LR decay are restored."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(root, epochs, ckpt_path=None):
        pl.seed_everything(0)
        module = tiny_mrd(model=None)
        t = trainer(root, [Remesh(epochs=[1]), DecayLROnRemesh(0.8),
                           ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)],
                    max_epochs=epochs, limit_val_batches=0, enable_checkpointing=True,
                    deterministic=True)  # Mitsuba on one thread: bit-reproducible gradients
        t.fit(module, datamodule=FibonacciViewsDataModule(num_views=4), ckpt_path=ckpt_path)
        return module

    whole = run(tmp_path / "whole", 3)
    run(tmp_path / "crashed", crash_after)
    resumed = run(tmp_path / "crashed", 3, ckpt_path="last")
    assert resumed.remesh_count == whole.remesh_count == 1
    assert torch.equal(resumed.faces, whole.faces)
    assert float(resumed.lr_scale) == pytest.approx(0.8)
    with torch.no_grad():
        assert (resumed.vertices() - whole.vertices()).abs().max() <= 1e-5


def test_epoch_shuffle_shards_like_one_batch_of_the_world_size():
    """Rank r of R takes positions r, r+R, ...: step k of all ranks = batch k of size R."""
    whole = EpochShuffle(10, seed=2)
    whole.set_epoch(3)
    shards = []
    for rank in range(3):
        shard = EpochShuffle(10, seed=2, num_replicas=3, rank=rank)
        shard.set_epoch(3)
        shards.append(list(shard))
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to 12 with the first entries
    order = list(whole)
    padded = order + order[:2]
    assert [shards[r][k] for k in range(4) for r in range(3)] == padded
    assert list(EpochShuffle(5, shuffle=False)) == [0, 1, 2, 3, 4]
