"""The private Lightning APIs lit3d relies on, named in one place.

Lightning has no public way yet to (1) build LightningModules inside another one that
LightningCLI instantiates without them recording the outer module's arguments, (2) wrap a
module for DDP again after its parameters changed shape (a remesh), or (3) change how
LightningCLI reads ``--ckpt_path``, adds persistent callbacks and marks its phases
(:class:`lit3d.cli.Lit3DCLI` overrides :data:`CLI_HOOKS`). ``tests/test_compat.py`` checks each
against the installed Lightning; ``pyproject.toml`` bounds lightning to the versions tested.
"""

from __future__ import annotations

from contextlib import contextmanager

#: LightningCLI methods that :class:`lit3d.cli.Lit3DCLI` overrides, with their parameters.
CLI_HOOKS = {"_parse_ckpt_path": ("self",),
             "_instantiate_trainer": ("self", "config", "callbacks"),
             "_run_subcommand": ("self", "subcommand")}


@contextmanager
def hyperparameters_not_captured():
    """While active, ``save_hyperparameters`` of LightningModules built inside another one
    records their own arguments: LightningCLI passes the outer module's through a context
    variable that nested modules would read too."""
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    token = _given_hyperparameters.set(None)
    try:
        yield
    finally:
        _given_hyperparameters.reset(token)


def rewrap_ddp_model(strategy, module) -> None:
    """Wraps ``module`` in a fresh ``DistributedDataParallel`` on a DDP ``strategy`` (whose old
    wrapper's reducer holds parameters that no longer exist) and registers the strategy's
    communication hooks again."""
    strategy.model = strategy._setup_model(module)
    strategy._register_ddp_hooks()
