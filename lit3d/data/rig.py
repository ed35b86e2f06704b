"""A fixed rig of views, indexed: the datamodule base of MRD's reconstructions.

Batches are ``(indices (B,) long, views)``: the index of each view in the rig lets a module pair
a render with the target render of the same camera. Training batches visit every view once per
epoch in an order drawn from ``(seed, epoch)`` (reproducible, and the same after a resume);
validation batches hold the views in rig order. Under DDP the training views are sharded over
the ranks so that R ranks with batch size 1 see, step for step, the views of one process with
batch size R (:class:`EpochShuffle`).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lit3d.data.views import Views


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


class EpochShuffle(DistributedSampler):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)`` (or ``range(n)`` itself
    without ``shuffle``), sharded over ``num_replicas`` ranks: rank ``r`` takes positions
    ``r, r + R, r + 2R, ...`` of it (padded with its first entries to a multiple of ``R``), so
    step ``k`` of the ranks together covers positions ``kR .. kR + R - 1``: the batch of a
    single process with ``batch_size = R``. Lightning calls :meth:`set_epoch` before each epoch
    (a resumed run repeats the same orders) and, as this is a ``DistributedSampler``, does not
    wrap it in one of its own (whose extra shuffle would break that correspondence)."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, num_replicas: int = 1,
                 rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} replicas")
        super().__init__(range(int(n)), num_replicas=num_replicas, rank=rank,
                         shuffle=shuffle, seed=seed)
        self.n = int(n)

    def order(self) -> list[int]:
        """This epoch's order of all ``n`` views (before sharding)."""
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __len__(self) -> int:
        return math.ceil(self.n / self.num_replicas)

    def __iter__(self):
        order = self.order()
        total = len(self) * self.num_replicas
        order += order[: total - len(order)]
        return iter(order[self.rank:total:self.num_replicas])


class RigViewsDataModule(pl.LightningDataModule):
    """Base of the rig datamodules: subclasses set ``self.views`` (a :class:`Views` of the
    whole rig) and save ``batch_size``, ``eval_batch_size``, ``shuffle`` and ``seed`` as
    hyperparameters (``batch_size=None``: all views in one batch)."""

    views: Views

    @staticmethod
    def check_sizes(**sizes: int | None) -> None:
        for name, value in sizes.items():
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        sampler = EpochShuffle(len(self.views), hp.seed, hp.shuffle, world, rank)
        return DataLoader(IndexedViews(self.views), batch_size=hp.batch_size or len(self.views),
                          sampler=sampler, collate_fn=collate_indexed)

    def _ordered(self) -> DataLoader:
        size = self.hparams.eval_batch_size or len(self.views)
        return DataLoader(IndexedViews(self.views), batch_size=size, collate_fn=collate_indexed)

    def val_dataloader(self) -> DataLoader:
        return self._ordered()

    def test_dataloader(self) -> DataLoader:
        return self._ordered()

    def predict_dataloader(self) -> DataLoader:
        return self._ordered()
