"""``FibonacciViewsDataModule``: MRD's cameras on a Fibonacci lattice, shuffled every epoch
(batches and sharding: :mod:`lit3d.data.rig`)."""

from __future__ import annotations

from lit3d.data.rig import RigViewsDataModule
from lit3d.data.views import fibonacci_views


class FibonacciViewsDataModule(RigViewsDataModule):
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
        self.check_sizes(num_views=num_views, batch_size=batch_size,
                         eval_batch_size=eval_batch_size)
        self.save_hyperparameters()
        self.views = fibonacci_views(num_views, distance, fov_deg)
