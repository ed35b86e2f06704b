"""HypersphereSimilarity and KendallRSA: against direct formulas / scipy, and under DDP."""

import lit3d  # noqa: F401, I001  (first: spawned ranks import this module before lightning)
import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from scipy import stats

from lit3d.metrics import (HypersphereSimilarity, KendallRSA, hypersphere_similarity,
                           similarity_matrix, upper_triangle)

torch.manual_seed(0)
VIEWS, DIM = 9, 16
PREDS = torch.randn(VIEWS, DIM, generator=torch.Generator().manual_seed(1))
TARGET = PREDS + 0.8 * torch.randn(VIEWS, DIM, generator=torch.Generator().manual_seed(2))
#: Views held by each of two ranks: different numbers on purpose.
SHARDS = (slice(0, 3), slice(3, VIEWS))


def direct_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)])


def test_hypersphere_similarity_equals_the_formula():
    expected = direct_cosines(PREDS.double().numpy(), TARGET.double().numpy())
    assert hypersphere_similarity(PREDS, TARGET).numpy() == pytest.approx(expected, abs=1e-12)
    metric = HypersphereSimilarity(output="mean_std")
    metric.update(PREDS[:4], TARGET[:4])
    metric.update(PREDS[4:], TARGET[4:])
    out = metric.compute()
    assert float(out["mean"]) == pytest.approx(expected.mean(), abs=1e-9)
    assert float(out["std"]) == pytest.approx(expected.std(ddof=1), abs=1e-9)
    # Invariant to each latent's scale: only directions count.
    scaled = HypersphereSimilarity()
    scaled.update(3 * PREDS, 0.1 * TARGET)
    assert float(scaled.compute()) == pytest.approx(expected.mean(), abs=1e-6)


def test_hypersphere_similarity_outputs_and_errors():
    per_view = HypersphereSimilarity(output="per_view")
    per_view.update(PREDS, TARGET)
    assert per_view.compute().shape == (VIEWS,)
    with pytest.raises(ValueError, match="output"):
        HypersphereSimilarity(output="median")
    with pytest.raises(ValueError, match="equal shape"):
        hypersphere_similarity(PREDS, TARGET[:, :3])


def direct_rsa(a: torch.Tensor, b: torch.Tensor):
    """RSMs and upper triangles written out with numpy loops, rounded to 10 decimals (values
    equal up to float noise are ties), then scipy's τ-b."""
    def rsm(z):
        z = z.double().numpy()
        return np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in z] for x in z])

    ra, rb = rsm(a), rsm(b)
    n = len(ra)
    xa = [ra[i, j] for i in range(n) for j in range(i + 1, n)]
    xb = [rb[i, j] for i in range(n) for j in range(i + 1, n)]
    return stats.kendalltau(np.round(xa, 10), np.round(xb, 10))


@pytest.mark.parametrize("views", [5, 9, 30])
def test_kendall_rsa_equals_scipy(views):
    g = torch.Generator().manual_seed(views)
    a = torch.randn(views, 8, generator=g)
    b = a + torch.randn(views, 8, generator=g)
    metric = KendallRSA()
    metric.update(a[:2], b[:2])
    metric.update(a[2:], b[2:])
    out = metric.compute()
    expected = direct_rsa(a, b)
    assert float(out["tau"]) == pytest.approx(expected.statistic, abs=1e-6)
    assert float(out["p_value"]) == pytest.approx(expected.pvalue, abs=1e-6)


def test_kendall_rsa_with_ties_equals_scipy_tau_b():
    # Repeated views make exactly tied similarities on both sides.
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 6, generator=g)
    a = torch.cat([base, base[:2]])                     # views 4, 5 repeat views 0, 1
    b = torch.cat([base + 0.5 * torch.randn(4, 6, generator=g), base[:1], base[1:2]])
    ta = upper_triangle(similarity_matrix(a)).numpy()
    assert len(np.unique(np.round(ta, 12))) < len(ta)  # there are ties
    metric = KendallRSA()
    metric.update(a, b)
    out = metric.compute()
    expected = direct_rsa(a, b)
    assert float(out["tau"]) == pytest.approx(expected.statistic, abs=1e-6)
    assert float(out["p_value"]) == pytest.approx(expected.pvalue, abs=1e-6)


def test_kendall_rsa_is_invariant_to_view_order_and_needs_three_views():
    perm = torch.randperm(VIEWS, generator=torch.Generator().manual_seed(4))
    one, two = KendallRSA(), KendallRSA()
    one.update(PREDS, TARGET)
    two.update(PREDS[perm], TARGET[perm])
    assert float(one.compute()["tau"]) == pytest.approx(float(two.compute()["tau"]), abs=1e-12)
    few = KendallRSA()
    few.update(PREDS[:2], TARGET[:2])
    with pytest.raises(ValueError, match="at least 3 views"):
        few.compute()


class MetricsOverShards(pl.LightningModule):
    """Each rank updates the metrics with its own, differently sized, share of the views."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out
        self.similarity = HypersphereSimilarity(output="mean_std")
        self.rsa = KendallRSA()

    def test_step(self, batch, batch_idx):
        views = SHARDS[self.global_rank] if self.trainer.world_size == 2 else slice(None)
        self.similarity.update(PREDS[views], TARGET[views])
        self.rsa.update(PREDS[views], TARGET[views])

    def on_test_epoch_end(self):
        sim, rsa = self.similarity.compute(), self.rsa.compute()
        if self.global_rank == 0:
            Path(self.out).write_text(json.dumps({
                "mean": float(sim["mean"]), "std": float(sim["std"]),
                "tau": float(rsa["tau"]), "p": float(rsa["p_value"])}))

    def test_dataloader(self):
        return torch.utils.data.DataLoader([0], batch_size=1)


def run_metrics(tmp_path: Path, devices: int, strategy: str) -> dict:
    out = tmp_path / f"metrics_{devices}.json"
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False, enable_checkpointing=False)
    trainer.test(MetricsOverShards(str(out)))
    return json.loads(out.read_text())


def test_metrics_agree_between_two_process_ddp_spawn_and_one_process(tmp_path):
    single = run_metrics(tmp_path, 1, "auto")
    spawned = run_metrics(tmp_path, 2, "ddp_spawn")
    for key in single:
        assert spawned[key] == pytest.approx(single[key], abs=1e-9), key
    expected = direct_rsa(PREDS, TARGET)
    assert single["tau"] == pytest.approx(expected.statistic, abs=1e-6)
