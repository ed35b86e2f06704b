"""``similarity_models``: networks that score every validation of an MRD run without entering
its loss, so that one pixel baseline holds the metamer bar for each of them."""

import json
import subprocess
import sys

import pytest
import torch

from lit3d.errors import InputError
from lit3d.metrics.metamer import network_summaries, read_baseline
from tests.test_cli import ROOT
from tests.test_cli_operations import MRD, TINY_MRD
from tests.test_viewer import ENV

MOBILENET = ('[{"class_path": "lit3d.models.VisionModel", "init_args": '
             '{"name": "mobilenet_v2"}}]')


def fit(save_dir, *extra):
    return subprocess.run([sys.executable, "-m", "lit3d", "fit", "--config", MRD, *TINY_MRD,
                           "--trainer.logger.init_args.save_dir", str(save_dir), *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The shrunk demo's pixel run, scored by its own EfficientNet-Lite0 and by MobileNetV2."""
    save_dir = tmp_path_factory.mktemp("baseline")
    result = fit(save_dir, "--model.init_args.similarity_models", MOBILENET)
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir / "mrd_demo" / "version_0"


def test_baseline_summary_scores_every_network(baseline):
    summary = json.loads((baseline / "summary.json").read_text())
    networks = summary["networks"]
    assert set(networks) == {"efficientnet_lite0", "mobilenet_v2"}
    own = networks["efficientnet_lite0"]
    assert own["top_similarity"] == summary["top_similarity"]
    assert own["epoch"] == summary["epoch"]
    other = networks["mobilenet_v2"]
    assert -1.0 <= other["top_similarity"] <= 1.0 and other["epoch"] in (0, 1, 2)
    assert other["top_similarity"] >= other["final_similarity"]
    assert other["initial_similarity"] is not None and other["rsa_tau"] is not None
    assert other["top_similarity"] != own["top_similarity"]
    metrics = (baseline / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val/mobilenet_v2/similarity" in metrics and "val/mobilenet_v2/rsa_tau" in metrics


@pytest.fixture(scope="module")
def mobilenet_run(baseline, tmp_path_factory):
    """A MobileNetV2 latent run with the EfficientNet-scored baseline as its bar."""
    save_dir = tmp_path_factory.mktemp("latent")
    result = fit(save_dir, "--model.init_args.loss", "latent",
                 "--model.init_args.model.init_args.name", "mobilenet_v2",
                 "--model.init_args.baseline", str(baseline))
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir / "mrd_demo" / "version_0"


def test_a_latent_run_of_a_scored_network_uses_the_baseline_bar(baseline, mobilenet_run):
    """A MobileNetV2 latent run against the EfficientNet baseline: the bar is the baseline's
    MobileNetV2 score; a network the baseline did not score is refused by name."""
    summary = json.loads((mobilenet_run / "summary.json").read_text())
    bar = json.loads((baseline / "summary.json").read_text())["networks"]["mobilenet_v2"]
    assert summary["network"] == "mobilenet_v2"
    assert summary["top_baseline_similarity"] == bar["top_similarity"]
    assert summary["metamer"] == (summary["top_similarity"] >= bar["top_similarity"])
    with pytest.raises(ValueError, match="add it to the baseline's similarity_models"):
        read_baseline(baseline, "resnet50")


def test_report_tables_every_network_from_one_baseline(baseline, mobilenet_run, tmp_path):
    from lit3d.commands import report

    record = report.run(["--networks", str(baseline), str(mobilenet_run), "--out",
                         str(tmp_path)])
    rows = {row["network"]: row for row in record["rows"]}
    assert set(rows) == {"efficientnet_lite0", "mobilenet_v2"}
    assert rows["efficientnet_lite0"]["run"] == ""  # scored by the baseline, no latent run
    run = json.loads((mobilenet_run / "summary.json").read_text())
    assert rows["mobilenet_v2"]["top_similarity"] == run["top_similarity"]
    assert rows["mobilenet_v2"]["metamer"] == run["metamer"]
    table = (tmp_path / "networks_table.md").read_text().splitlines()
    assert table[0].startswith("| target | network | run |") and len(table) == 4
    with pytest.raises(InputError, match="not scored by the baseline"):
        report.run(["--networks", str(mobilenet_run), str(baseline), "--out", str(tmp_path)])


def test_network_summaries_pick_each_network_peak():
    history = [{"epoch": -1, "similarity": 0.1, "networks": {"b": {"similarity": 0.2}}},
               {"epoch": 0, "similarity": 0.5, "rsa_tau": 0.1, "rsa_p": 0.5,
                "networks": {"b": {"similarity": 0.9, "rsa_tau": 0.3, "rsa_p": 0.2}}},
               {"epoch": 1, "similarity": 0.7, "rsa_tau": 0.2, "rsa_p": 0.4,
                "networks": {"b": {"similarity": 0.6, "rsa_tau": 0.4, "rsa_p": 0.1}}}]
    out = network_summaries(history, "a", ["b"], "pixel")
    assert out["a"]["epoch"] == 1 and out["a"]["top_similarity"] == 0.7
    assert out["b"] == {"epoch": 0, "top_similarity": 0.9, "final_similarity": 0.6,
                        "initial_similarity": 0.2, "rsa_tau": 0.3, "rsa_p": 0.2}


def test_scored_networks_need_distinct_names():
    from lit3d.geometry import StarShape
    from lit3d.models import VisionModel
    from lit3d.modules import MRDShape

    with pytest.raises(ValueError, match="distinct names"):
        MRDShape(StarShape(), model=VisionModel("mobilenet_v2", weights=None),
                 similarity_models=[VisionModel("mobilenet_v2", weights=None)])
    module = MRDShape(StarShape(), model=VisionModel("mobilenet_v2", weights=None),
                      similarity_models=[VisionModel("efficientnet_lite0", weights=None)])
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert not any(k.startswith("similarity_models.") for k in checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    assert all(not p.requires_grad for p in module.similarity_models.parameters())
    assert torch.equal(checkpoint["state_dict"]["shape.u"], module.state_dict()["shape.u"])
