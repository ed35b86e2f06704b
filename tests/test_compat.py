"""The private Lightning APIs lit3d relies on (lit3d.compat) exist in the installed Lightning
with the parameters lit3d uses."""

import contextvars
import inspect

import pytest
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import DDPStrategy

from lit3d.compat import CLI_HOOKS, hyperparameters_not_captured


@pytest.mark.parametrize("name", sorted(CLI_HOOKS))
def test_every_overridden_cli_hook_exists_with_its_parameters(name):
    method = getattr(LightningCLI, name)
    assert tuple(inspect.signature(method).parameters) == CLI_HOOKS[name]


def test_the_ddp_rewrap_hooks_exist():
    assert tuple(inspect.signature(DDPStrategy._setup_model).parameters) == ("self", "model")
    assert tuple(inspect.signature(DDPStrategy._register_ddp_hooks).parameters) == ("self",)


def test_nested_modules_record_their_own_hyperparameters():
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    from lit3d.models.cells import SimpleCell
    from lit3d.modules.mei3d import MEI3D

    assert isinstance(_given_hyperparameters, contextvars.ContextVar)
    token = _given_hyperparameters.set({"outer": 1})  # what LightningCLI does for the outer one
    try:
        with hyperparameters_not_captured():
            inner = MEI3D(response_model=SimpleCell(input_size=16), neuron=0)
    finally:
        _given_hyperparameters.reset(token)
    assert "outer" not in inner.hparams and inner.hparams["neuron"] == 0
