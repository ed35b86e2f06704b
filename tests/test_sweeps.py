"""Every W&B sweep's command line parses with LightningCLI for a sample of its grid, and the
sweep values reach the module."""

import itertools
import sys
from pathlib import Path

import pytest
import yaml

from lit3d.cli import main

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lit3d"])
    monkeypatch.chdir(ROOT)  # the agent runs the command from the repository root


def test_the_two_sweeps_exist():
    assert {p.name for p in SWEEPS} >= {"lambda_grid.yaml", "mrd_lambda.yaml"}


def grid_sample(parameters: dict) -> list[dict]:
    names = sorted(parameters)
    grid = list(itertools.product(*(parameters[n]["values"] for n in names)))
    picks = sorted({0, len(grid) // 2, len(grid) - 1})
    return [dict(zip(names, grid[i])) for i in picks]


@pytest.mark.parametrize("sweep", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_command_parses_for_a_sample_of_its_grid(sweep):
    spec = yaml.safe_load(sweep.read_text())
    assert spec["method"] == "grid" and spec["metric"]["goal"] in ("minimize", "maximize")
    command = spec["command"]
    assert command[:5] == ["${env}", "python", "-m", "lit3d", "fit"] and command[-1] == "${args}"
    fixed = command[5:-1]
    for values in grid_sample(spec["parameters"]):
        args = [f"--{name}={value}" for name, value in values.items()]  # wandb's ${args}
        cli = main([*fixed, *args], run=False)
        for name, value in values.items():
            assert name.startswith("model.init_args.")
            assert cli.model.hparams[name.split(".")[-1]] == pytest.approx(value), name
        assert any(type(lg).__name__ == "WandbLogger" for lg in cli.trainer.loggers)
