"""NaN/Inf loss or gradient: the step is skipped (parameters and Adam moments untouched) with a
warning; after K consecutive skips the run stops and the last good mesh is what gets saved."""

import json

import lightning.pytorch as pl
import pytest
import torch

from callbacks import FitArtifacts, SkipNonFinite
from lit3d.data.datamodule import ViewsDataModule
from tests.test_mei3d import tiny_module

pytestmark = pytest.mark.filterwarnings("ignore:.*step skipped.*")


class Poison(pl.Callback):
    """Makes the renders (``kind="loss"``) or the offsets' gradient (``kind="grad"``) NaN at
    the given global steps, and records the offsets and Adam's moments before every step."""

    def __init__(self, steps, kind):
        self.steps, self.kind = set(steps), kind
        self.offsets, self.moments = {}, {}
        self.active = False
        self._handle = None

    def on_fit_start(self, trainer, module):
        renderer = module.renderer

        def render(*args, **kwargs):
            images = renderer(*args, **kwargs)
            return images * float("nan") if self.active else images

        module.renderer = render if self.kind == "loss" else renderer

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        step = trainer.global_step
        self.offsets[step] = module.deformation.offsets.detach().clone()
        state = trainer.optimizers[0].state.get(module.deformation.offsets, {})
        self.moments[step] = state["exp_avg"].clone() if "exp_avg" in state else None
        self.active = step in self.steps
        if self.active and self.kind == "grad":
            self._handle = module.deformation.offsets.register_hook(lambda g: g * float("nan"))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.active = False
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def fit(tmp_path, poison, steps=6, k=3):
    pl.seed_everything(0)
    module = tiny_module(restore_best=False)
    skip = SkipNonFinite(max_consecutive=k)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         limit_val_batches=0, default_root_dir=tmp_path,
                         callbacks=[poison, skip, FitArtifacts()])
    trainer.fit(module, datamodule=ViewsDataModule(steps_per_epoch=steps))
    return module, skip, trainer


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_a_non_finite_step_is_skipped_and_training_goes_on(tmp_path, kind):
    poison = Poison(steps=[2], kind=kind)
    with pytest.warns(UserWarning, match=f"non-finite {kind}.* at step 2: step skipped"):
        module, skip, trainer = fit(tmp_path, poison, steps=5)
    o = poison.offsets
    assert torch.equal(o[2], o[3])                       # step 2 changed nothing
    assert torch.equal(poison.moments[2], poison.moments[3])  # nor Adam's moments
    assert not torch.equal(o[1], o[2]) and not torch.equal(o[3], o[4])  # the others did
    assert skip.skipped == 1 and skip.consecutive == 0 and not skip.stopped
    assert trainer.global_step == 5 and torch.isfinite(module.vertices()).all()


def test_k_consecutive_skips_stop_the_run_with_the_last_good_mesh_saved(tmp_path):
    poison = Poison(steps=range(2, 100), kind="loss")
    module, skip, trainer = fit(tmp_path, poison, steps=20, k=3)
    assert skip.stopped and skip.consecutive == 3
    assert trainer.global_step == 5  # steps 0, 1 good; 2, 3, 4 skipped, then stop
    assert torch.equal(module.deformation.offsets.detach(), poison.offsets[2])  # last good
    import trimesh

    saved = trimesh.load(tmp_path / "mesh.ply", process=False)
    assert torch.isfinite(torch.as_tensor(saved.vertices)).all()
    assert torch.allclose(torch.as_tensor(saved.vertices, dtype=torch.float32),
                          module.vertices().detach(), atol=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 5


def test_max_consecutive_must_be_positive():
    with pytest.raises(ValueError, match="max_consecutive must be >= 1"):
        SkipNonFinite(max_consecutive=0)
