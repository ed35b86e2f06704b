"""``ViewsDataModule``: yields batches of :class:`~lit3d.data.views.Views`.

For 3D-MEI the view is the fixed overhead camera with a point light near it, optionally jittered
(camera and light directions tilted by a random angle each training step). Jitter is applied after
the batch reaches the device and is seeded by ``(seed, global_step, rank)``, so a run is
reproducible, resumes identically, and differs between ranks. Under DDP the steps are sharded
over the ranks (Lightning's sampler), unless the module sets ``replicate_views = True``.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lit3d.data.views import Views, jitter_directions, overhead_views


class RepeatedViews(Dataset):
    """Map-style dataset cycling over a fixed set of views ``length`` times in total."""

    def __init__(self, views: Views, length: int):
        self.views = views
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Views:
        return self.views[index % len(self.views)]


class ReplicatedSampler(DistributedSampler):
    """Every index on every rank, in order. For modules whose ranks split something other
    than the views (``replicate_views = True``, e.g. ``MEI3DPopulation`` splits its units):
    Lightning leaves a ``DistributedSampler`` in place instead of sharding the views."""

    def __init__(self, dataset: Dataset):
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=False)


class ViewsDataModule(pl.LightningDataModule):
    """Camera/light views for the optimizations.

    Args:
        cameras: camera rig; ``"overhead"`` is the 3D-MEI camera at ``(0, 0, camera_distance)``.
        num_views: distinct views in the rig.
        camera_distance: camera distance from the origin, world units.
        fov_deg: field of view, degrees.
        light_azimuth_deg, light_elevation_deg, light_distance: point-light position on its dome.
        light_intensity: point-light intensity, W/sr.
        jitter_camera_deg: std of the random tilt of the camera direction per training step.
        jitter_light_deg: std of the random tilt of the light direction per training step.
        steps_per_epoch: training batches per epoch.
        batch_size: views per batch.
        seed: seed of the jitter.
    """

    def __init__(
        self,
        cameras: Literal["overhead"] = "overhead",
        num_views: int = 1,
        camera_distance: float = 10.0,
        fov_deg: float = 14.0,
        light_azimuth_deg: float = 45.0,
        light_elevation_deg: float = 75.0,
        light_distance: float = 10.0,
        light_intensity: float = 156.25,
        jitter_camera_deg: float = 0.0,
        jitter_light_deg: float = 0.0,
        steps_per_epoch: int = 50,
        batch_size: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        if cameras != "overhead":
            raise ValueError(f"unknown camera rig {cameras!r}; available: 'overhead'")
        for name, value in [("num_views", num_views), ("steps_per_epoch", steps_per_epoch),
                            ("batch_size", batch_size)]:
            if value < 1:
                raise ValueError(f"ViewsDataModule.{name} must be >= 1, got {value}")
        if jitter_camera_deg < 0 or jitter_light_deg < 0:
            raise ValueError("jitter angles must be >= 0")
        self.save_hyperparameters()
        self.views = overhead_views(
            num_views, camera_distance, fov_deg, light_azimuth_deg, light_elevation_deg,
            light_distance, light_intensity,
        )

    def _loader(self, length: int, shuffle: bool = False) -> DataLoader:
        dataset = RepeatedViews(self.views, length)
        module = getattr(self.trainer, "lightning_module", None) if self.trainer else None
        sampler = None
        if getattr(module, "replicate_views", False):
            sampler = ReplicatedSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle if sampler is None else None,
            sampler=sampler,
            collate_fn=Views.cat,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.steps_per_epoch * self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(len(self.views))

    def test_dataloader(self) -> DataLoader:
        return self._loader(len(self.views))

    def predict_dataloader(self) -> DataLoader:
        return self._loader(len(self.views))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = self.trainer
        hp = self.hparams
        if (
            not isinstance(batch, Views)
            or trainer is None
            or not trainer.training
            or (hp.jitter_camera_deg <= 0 and hp.jitter_light_deg <= 0)
        ):
            return batch
        generator = torch.Generator().manual_seed(
            hash((hp.seed, trainer.global_step, trainer.global_rank)) % (2**63)
        )
        return batch.replace(
            camera_position=jitter_directions(
                batch.camera_position, batch.camera_target, hp.jitter_camera_deg, generator
            ),
            light_position=jitter_directions(
                batch.light_position, torch.zeros_like(batch.light_position),
                hp.jitter_light_deg, generator,
            ),
        )
