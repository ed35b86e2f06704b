"""Views (camera pose + light) and the datamodules that yield them."""

from lit3d.data.datamodule import ViewsDataModule
from lit3d.data.fibonacci import FibonacciViewsDataModule
from lit3d.data.rig import RigViewsDataModule
from lit3d.data.turntable import TurntableViewsDataModule
from lit3d.data.views import (
    Views,
    fibonacci_directions,
    fibonacci_views,
    orbit_views,
    overhead_views,
    spherical_to_cartesian,
    turntable_views,
)

__all__ = ["ViewsDataModule", "FibonacciViewsDataModule", "RigViewsDataModule",
           "TurntableViewsDataModule", "Views", "fibonacci_directions", "fibonacci_views",
           "orbit_views", "overhead_views", "spherical_to_cartesian", "turntable_views"]
