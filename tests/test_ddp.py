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
from lit3d.geometry.primitives import IcoSphere
from lit3d.geometry.procedural import StarShape
from lit3d.modules.mrd_shape import MRDShape
from lit3d.render.environment import SunSky
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
