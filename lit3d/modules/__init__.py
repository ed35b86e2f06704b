"""LightningModules: each optimization of lit3d composes geometry, renderer and response model."""

from lit3d.modules.mei3d import MEI3D

__all__ = ["MEI3D"]
