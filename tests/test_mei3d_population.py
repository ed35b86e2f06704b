"""Many units' 3D-MEIs in one module: each unit is optimized exactly as on its own, and under
``ddp_spawn`` the units are spread over the ranks (each rank renders only its own) with the
result of a single process."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from callbacks import FitArtifacts
from lit3d.data.datamodule import ViewsDataModule
from lit3d.geometry.primitives import Sheet
from lit3d.models.cells import SimpleCell
from lit3d.modules.mei3d import MEI3D
from lit3d.modules.mei3d_population import MEI3DPopulation
from lit3d.render.mitsuba import MitsubaRenderer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

ORIENTATIONS = [0.0, 45.0, 90.0]
SETTINGS = dict(mesh=Sheet(resolution=10), lambda_lap=10.0, lambda_edge=3.0, lambda_area=30.0,
                lambda_arap=1.0, lr=0.01, eval_spp=8)


def cell():
    return SimpleCell(input_size=24, orientation_deg=ORIENTATIONS, frequency=3.0)


def population():
    return MEI3DPopulation(cell(), neurons=[0, 1, 2],
                           renderer=MitsubaRenderer(image_size=24, spp=2), **SETTINGS)


def test_batched_units_gradients_do_not_leak_and_equal_each_units_own():
    """All units rendered in one call and scored in one network forward: the gradient of one
    unit's response reaches only that unit's parameters, and equals the gradient the unit gets
    from its own render (same seed) and its own forward pass."""
    torch.manual_seed(0)
    pop = population()
    for unit in pop.units:  # distinct meshes, so a leak would show
        with torch.no_grad():
            unit.deformation.offsets.normal_(0.0, 0.02)
    views = ViewsDataModule().views
    seeds = [11, 22, 33]
    _, images, responses = pop.respond([0, 1, 2], views, seeds)
    assert images.shape[0] == 3 and responses.shape == (3,)
    for j, unit in enumerate(pop.units):
        grads = torch.autograd.grad(responses[j], [u.deformation.offsets for u in pop.units] +
                                    [u.deformation.log_sigma for u in pop.units],
                                    retain_graph=True, allow_unused=True)
        for k in range(3):
            for g in (grads[k], grads[3 + k]):
                if k != j:
                    assert g is None or torch.count_nonzero(g) == 0, (j, k)
        own_images, own = unit.respond(unit.vertices(), views, seed=seeds[j])
        torch.testing.assert_close(images[j:j + 1], own_images, rtol=0, atol=1e-6)
        expected = torch.autograd.grad(own.mean(), [unit.deformation.offsets,
                                                    unit.deformation.log_sigma])
        assert expected[0].abs().max() > 0
        for got, want in zip((grads[j], grads[3 + j]), expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))


class Recorder(pl.Callback):
    """Each rank saves which units it rendered and every unit's offsets after training."""

    def __init__(self, folder: str, tag: str):
        self.folder, self.tag = folder, tag

    def on_train_epoch_end(self, trainer, module):
        if not isinstance(module, MEI3DPopulation):
            return
        torch.save({"local": module.local_units(),
                    "offsets": [u.deformation.offsets.detach().clone() for u in module.units]},
                   Path(self.folder) / f"{self.tag}_rank{trainer.global_rank}.pt")


def fit(module, folder, tag, steps=4, **trainer_options):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=folder,
                         callbacks=[Recorder(str(folder), tag),
                                    FitArtifacts(object_size=48, turntable_size=32,
                                                 object_spp=2)],
                         **trainer_options)
    trainer.fit(module, datamodule=ViewsDataModule(steps_per_epoch=steps))
    return trainer


def test_every_unit_is_optimized_as_on_its_own_and_gets_its_artifacts(tmp_path):
    pl.seed_everything(0)
    pop = population()
    fit(pop, tmp_path, "pop")
    pl.seed_everything(0)
    alone = MEI3D(cell(), renderer=MitsubaRenderer(image_size=24, spp=2), neuron=0,
                  collapse_fraction=0.0, **SETTINGS)  # built first: the same render seed
    fit(alone, tmp_path / "alone", "alone")
    assert int(pop.units[0].render_seed) == int(alone.render_seed)
    torch.testing.assert_close(pop.units[0].deformation.offsets, alone.deformation.offsets,
                               rtol=0, atol=1e-6)
    for n in range(3):
        for name in (f"mesh_neuron_{n}.ply", f"object_neuron_{n}.png",
                     f"turntable_neuron_{n}.webp"):
            assert (tmp_path / name).is_file(), name
    for name in ("render.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    import json

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["neurons"] == [0, 1, 2] and len(metrics["normalized_responses"]) == 3
    assert len(metrics["units"]) == 3
    assert metrics["self_intersections"] == max(u["self_intersections"] for u in metrics["units"])
    assert metrics["area_ratio"] == max(u["area_ratio"] for u in metrics["units"])
    assert metrics["mean_normalized_response"] == pytest.approx(
        sum(metrics["normalized_responses"]) / 3)


def test_ddp_spawn_spreads_the_units_over_ranks_with_the_single_process_result(tmp_path):
    pl.seed_everything(0)
    fit(population(), tmp_path, "ddp", strategy="ddp_spawn", devices=2)
    pl.seed_everything(0)
    fit(population(), tmp_path, "single")
    rank0, rank1 = (torch.load(tmp_path / f"ddp_rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "single_rank0.pt")
    assert rank0["local"] == [0, 2] and rank1["local"] == [1] and single["local"] == [0, 1, 2]
    for k in range(3):
        assert torch.equal(rank0["offsets"][k], rank1["offsets"][k])
        assert rank0["offsets"][k].abs().max() > 0  # every unit moved
        torch.testing.assert_close(rank0["offsets"][k], single["offsets"][k], rtol=0,
                                   atol=1e-5)


def test_neurons_are_checked():
    for bad in ([], [0, 0]):
        with pytest.raises(ValueError, match="neurons must be a non-empty list"):
            MEI3DPopulation(cell(), neurons=bad)
    with pytest.raises(ValueError, match="neuron 7 out of range"):
        MEI3DPopulation(cell(), neurons=[0, 7])


def test_guarded_units_stay_admissible_each_on_its_own(tmp_path):
    """With the step guard, every unit's mesh stays free of self-intersections and within the
    area bound even at a learning rate that crumples unguarded sheets."""
    from lit3d.metrics.plausibility import plausibility

    pl.seed_everything(0)
    settings = {**SETTINGS, "lr": 0.05}
    pop = MEI3DPopulation(cell(), neurons=[0, 1, 2], renderer=MitsubaRenderer(image_size=24,
                          spp=2), prevent_self_intersections=True, max_area_ratio=3.0,
                          **settings)
    fit(pop, tmp_path, "guarded", steps=15)
    for unit in pop.units:
        measures = plausibility(unit.vertices(), unit.faces, unit.rest_vertices)
        assert measures["self_intersections"] == 0.0 and measures["area_ratio"] <= 3.0
        assert (unit.vertices() - unit.rest_vertices).abs().max() > 0.01  # it did move
