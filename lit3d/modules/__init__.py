"""LightningModules: each optimization of lit3d composes geometry, renderer and response model."""

from lit3d.modules.mei3d import MEI3D
from lit3d.modules.mei3d_population import MEI3DPopulation
from lit3d.modules.mrd_material import MRDMaterial
from lit3d.modules.mrd_shape import MRDShape

__all__ = ["MEI3D", "MEI3DPopulation", "MRDMaterial", "MRDShape"]
