"""``FibonacciViewsDataModule``: MRD's cameras on a Fibonacci lattice, shuffled every epoch.

Batches are ``(indices (B,) long, views)``: the index of each view in the rig lets a module pair
a render with the target render of the same camera. Training batches visit every view once per
epoch in an order drawn from ``(seed, epoch)`` (reproducible, and the same after a resume);
validation batches hold the views in rig order.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import lightning.pytorch as pl

from lit3d.data.views import Views, fibonacci_views


class IndexedViews(Dataset):
    """Map-style dataset of ``(index, view)`` pairs of a rig."""

    def __init__(self, views: Views):
        self.views = views

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> tuple[int, Views]:
        return index, self.views[index]


def collate_indexed(items: list[tuple[int, Views]]) -> tuple[torch.Tensor, Views]:
    """``[(index, view), ...]`` -> ``(indices (B,), Views of batch B)``."""
    return torch.tensor([i for i, _ in items], dtype=torch.long), Views.cat([v for _, v in items])


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``; Lightning calls
    :meth:`set_epoch` before each epoch (so a resumed run repeats the same orders)."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class FibonacciViewsDataModule(pl.LightningDataModule):
    """Cameras on the Fibonacci lattice of a sphere, looking at the origin (MRD, sec. 2.3).

    Args:
        num_views: cameras in the rig (MRD's dragon: 25).
        distance: camera distance from the origin, world units.
        fov_deg: field of view, degrees.
        batch_size: views per training step (MRD: 1).
        eval_batch_size: views per validation step (default: all).
        shuffle: new view order every epoch (else rig order).
        seed: seed of the orders.
    """

    def __init__(self, num_views: int = 25, distance: float = 4.0, fov_deg: float = 40.0,
                 batch_size: int = 1, eval_batch_size: int | None = None, shuffle: bool = True,
                 seed: int = 0):
        super().__init__()
        for name, value in [("num_views", num_views), ("batch_size", batch_size),
                            ("eval_batch_size", eval_batch_size or 1)]:
            if value < 1:
                raise ValueError(f"FibonacciViewsDataModule.{name} must be >= 1, got {value}")
        self.save_hyperparameters()
        self.views = fibonacci_views(num_views, distance, fov_deg)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        sampler = EpochShuffle(len(self.views), hp.seed) if hp.shuffle else None
        return DataLoader(IndexedViews(self.views), batch_size=hp.batch_size, sampler=sampler,
                          collate_fn=collate_indexed)

    def _ordered(self) -> DataLoader:
        size = self.hparams.eval_batch_size or len(self.views)
        return DataLoader(IndexedViews(self.views), batch_size=size, collate_fn=collate_indexed)

    def val_dataloader(self) -> DataLoader:
        return self._ordered()

    def test_dataloader(self) -> DataLoader:
        return self._ordered()

    def predict_dataloader(self) -> DataLoader:
        return self._ordered()
