"""Multi-process training (``ddp_spawn``, 2 CPU ranks) of the MRD demo, shrunk: the views are
sharded over the ranks, the ranks hold identical vertices after every epoch and right after
each remesh (the module is re-wrapped for DDP when its parameters change shape), and the loss
equals the single-process loss over the same views (``batch_size`` = 2 on one process)."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from callbacks import Remesh
from lit3d.data.fibonacci import FibonacciViewsDataModule
from lit3d.data.turntable import TurntableViewsDataModule
from lit3d.geometry.primitives import IcoSphere
from lit3d.geometry.procedural import StarShape
from lit3d.modules.mrd_material import MRDMaterial
from lit3d.modules.mrd_shape import MRDShape
from lit3d.render.environment import SunSky
from lit3d.render.material_scene import MaterialRenderer
from lit3d.render.materials import KnownPrincipled
from lit3d.render.mitsuba import MitsubaEnvironmentRenderer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


class Recorder(pl.Callback):
    """Each rank saves its vertices after every remesh and epoch, and its step losses."""

    def __init__(self, folder: str, tag: str):
        self.folder, self.tag = folder, tag
        self.losses: list[float] = []
        self.indices: list[list[int]] = []
        self.snapshots: dict[str, torch.Tensor] = {}

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch in (1, 2):  # after Remesh (listed before this callback)
            self.snapshots[f"remesh{trainer.current_epoch}"] = module.vertices().detach().clone()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))
        self.indices.append(batch[0].tolist())

    def on_train_epoch_end(self, trainer, module):
        self.snapshots[f"epoch{trainer.current_epoch}"] = module.vertices().detach().clone()

    def on_fit_end(self, trainer, module):
        torch.save({"losses": self.losses, "indices": self.indices, "snapshots": self.snapshots,
                    "world_size": trainer.world_size, "num_vertices": module.shape.num_vertices},
                   Path(self.folder) / f"{self.tag}_rank{trainer.global_rank}.pt")


def fit(folder: Path, tag: str, strategy: str, devices: int, batch_size: int) -> None:
    pl.seed_everything(0)
    module = MRDShape(
        target=StarShape(subdivisions=2), initial=IcoSphere(subdivisions=1),
        renderer=MitsubaEnvironmentRenderer(image_size=24, spp=2, environment_resolution=16,
                                            environment=SunSky(sun_radiance=50.0)),
        target_spp=4, eval_spp=2, chamfer_points=500)
    trainer = pl.Trainer(
        accelerator="cpu", strategy=strategy, devices=devices, max_epochs=3, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, check_val_every_n_epoch=1,
        callbacks=[Remesh(epochs=[1, 2], max_vertices=400), Recorder(str(folder), tag)])
    trainer.fit(module, datamodule=FibonacciViewsDataModule(num_views=8, batch_size=batch_size))


def test_ddp_spawn_ranks_agree_after_every_epoch_and_remesh_and_match_one_process(tmp_path):
    fit(tmp_path, "ddp", "ddp_spawn", 2, batch_size=1)
    fit(tmp_path, "single", "auto", 1, batch_size=2)
    rank0, rank1 = (torch.load(tmp_path / f"ddp_rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "single_rank0.pt")
    assert rank0["world_size"] == 2 and single["world_size"] == 1
    keys = ["remesh1", "remesh2", "epoch0", "epoch1", "epoch2"]
    assert set(rank0["snapshots"]) == set(rank1["snapshots"]) == set(keys)
    for key in keys:  # identical on both ranks, bit for bit
        assert torch.equal(rank0["snapshots"][key], rank1["snapshots"][key]), key
    assert rank0["snapshots"]["remesh1"].shape[0] > 42  # the remesh refined the ico-sphere
    # 8 views: 4 steps an epoch of one view per rank = 4 steps of two views on one process.
    ddp_loss = (torch.tensor(rank0["losses"]) + torch.tensor(rank1["losses"])) / 2
    single_loss = torch.tensor(single["losses"])
    assert ddp_loss.shape == single_loss.shape == (12,)
    torch.testing.assert_close(ddp_loss, single_loss, rtol=1e-4, atol=1e-6)
    for key in keys:
        assert rank0["snapshots"][key].shape == single["snapshots"][key].shape, key
        torch.testing.assert_close(rank0["snapshots"][key], single["snapshots"][key],
                                   rtol=0, atol=1e-4)


class MaterialRecorder(pl.Callback):
    """Each rank saves its material parameters after every epoch and its step losses."""

    def __init__(self, folder: str, tag: str):
        self.folder, self.tag = folder, tag
        self.losses: list[float] = []
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))

    def on_train_epoch_end(self, trainer, module):
        self.snapshots.append({k: v.detach().clone() for k, v in module.params.items()})

    def on_fit_end(self, trainer, module):
        torch.save({"losses": self.losses, "snapshots": self.snapshots,
                    "world_size": trainer.world_size},
                   Path(self.folder) / f"{self.tag}_rank{trainer.global_rank}.pt")


def fit_material(folder: Path, tag: str, strategy: str, devices: int) -> None:
    pl.seed_everything(0)
    module = MRDMaterial(
        target=KnownPrincipled(base_color=(0.8, 0.35, 0.2), roughness=0.3, metallic=0.6),
        parameters="base_color|roughness|metallic",
        renderer=MaterialRenderer(image_size=16, spp=4, integrator="prb", max_depth=3,
                                  environment=SunSky(), environment_resolution=16),
        lr=0.05, target_spp=8, eval_spp=4)
    trainer = pl.Trainer(
        accelerator="cpu", strategy=strategy, devices=devices, max_epochs=3, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, check_val_every_n_epoch=3,
        callbacks=[MaterialRecorder(str(folder), tag)])
    trainer.fit(module, datamodule=TurntableViewsDataModule(num_views=4))


def test_ddp_spawn_material_ranks_agree_and_match_one_process(tmp_path):
    """MRDMaterial on 2 ranks: each renders 2 of the 4 turntable views a step (one step an
    epoch); the ranks hold identical parameters after every epoch, equal to one process
    rendering all 4 views, and the loss is the same."""
    fit_material(tmp_path, "ddp", "ddp_spawn", 2)
    fit_material(tmp_path, "single", "auto", 1)
    rank0, rank1 = (torch.load(tmp_path / f"ddp_rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "single_rank0.pt")
    assert rank0["world_size"] == 2 and single["world_size"] == 1
    assert len(rank0["snapshots"]) == len(single["snapshots"]) == 3
    for epoch, (a, b, one) in enumerate(zip(rank0["snapshots"], rank1["snapshots"],
                                            single["snapshots"])):
        for name in one:
            assert torch.equal(a[name], b[name]), (epoch, name)
            torch.testing.assert_close(a[name], one[name], rtol=0, atol=1e-4)
    assert not torch.equal(single["snapshots"][-1]["roughness"],
                           single["snapshots"][0]["roughness"])  # it did move
    ddp_loss = (torch.tensor(rank0["losses"]) + torch.tensor(rank1["losses"])) / 2
    torch.testing.assert_close(ddp_loss, torch.tensor(single["losses"]), rtol=1e-4, atol=1e-6)
