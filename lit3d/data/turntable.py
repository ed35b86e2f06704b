"""``TurntableViewsDataModule``: MRD's material cameras (front, back and both sides)."""

from __future__ import annotations

from lit3d.data.rig import RigViewsDataModule
from lit3d.data.views import turntable_views


class TurntableViewsDataModule(RigViewsDataModule):
    """Cameras evenly spaced in azimuth around the object
    (:func:`~lit3d.data.views.turntable_views`); MRD's material scene uses 4. Batches are
    ``(indices, views)`` (:mod:`lit3d.data.rig`).

    Args:
        num_views: cameras (4: front, side, back, side).
        elevation_deg: camera elevation above the floor's plane, degrees.
        distance: camera distance from the origin, world units.
        fov_deg: field of view, degrees.
        batch_size: views per training step; ``None`` (default): all, i.e. the gradients of all
            views are accumulated into one step per epoch, as MRD's material runs do.
        eval_batch_size: views per validation step (default: all).
        shuffle: new view order every epoch (else rig order).
        seed: seed of the orders.
    """

    def __init__(self, num_views: int = 4, elevation_deg: float = 20.0, distance: float = 5.0,
                 fov_deg: float = 40.0, batch_size: int | None = None,
                 eval_batch_size: int | None = None, shuffle: bool = False, seed: int = 0):
        super().__init__()
        self.check_sizes(num_views=num_views, batch_size=batch_size,
                         eval_batch_size=eval_batch_size)
        self.save_hyperparameters()
        self.views = turntable_views(num_views, elevation_deg, distance, fov_deg)
