"""The module contracts (lit3d.modules.protocols): which module offers which, and callbacks
that need one name it when a module lacks it."""

import pytest
from test_mei3d import tiny_module
from test_mei3d_population import population
from test_mrd_material import tiny_material
from test_mrd_shape import tiny_mrd

from callbacks import EarlyStoppingRestoreBest, Remesh
from helpers import trainer
from lit3d.data.datamodule import ViewsDataModule
from lit3d.modules.protocols import (
    Evaluated,
    HasEpochHistory,
    HasMesh,
    HasMeshes,
    Previews,
    Remeshable,
    ShowsObjects,
    Snapshots,
    VertexObjective,
)

CONTRACTS = (Evaluated, HasMesh, HasMeshes, Previews, Snapshots, Remeshable, ShowsObjects,
             HasEpochHistory, VertexObjective)
EXPECTED = {
    "MEI3D": {Evaluated, HasMesh, Previews, ShowsObjects, VertexObjective},
    "MEI3DPopulation": {Evaluated, HasMesh, HasMeshes, Previews, ShowsObjects},
    "MRDShape": {Evaluated, HasMesh, Previews, Snapshots, Remeshable, HasEpochHistory,
                 VertexObjective},
    "MRDMaterial": {Evaluated, Previews, Snapshots, HasEpochHistory},
}


@pytest.mark.parametrize("build", [tiny_module, population, tiny_mrd, tiny_material],
                         ids=list(EXPECTED))
def test_each_module_offers_its_contracts(build):
    module = build()
    offered = {c for c in CONTRACTS if isinstance(module, c)}
    assert offered == EXPECTED[type(module).__name__]
    assert isinstance(module.headline_metric, str)


def test_callbacks_name_the_contract_a_module_lacks(tmp_path):
    with pytest.raises(TypeError, match="Snapshots"):
        trainer(tmp_path, [EarlyStoppingRestoreBest()], max_epochs=1).fit(
            tiny_module(), datamodule=ViewsDataModule(steps_per_epoch=1))
    with pytest.raises(TypeError, match="Remeshable"):
        trainer(tmp_path, [Remesh(epochs=[0])], max_epochs=1).fit(
            tiny_module(), datamodule=ViewsDataModule(steps_per_epoch=1))
