"""Differentiable renderers: ``render(vertices, faces, views) -> (B, 3, H, W)``.

Back-ends import their renderer library lazily, so importing this package is cheap.
"""

from lit3d.render.base import Renderer
from lit3d.render.environment import (
    ConstantEnvironment,
    Environment,
    EnvironmentMap,
    SkyGradient,
    SunSky,
)
from lit3d.render.material_scene import MaterialRenderer
from lit3d.render.mitsuba import MitsubaEnvironmentRenderer, MitsubaRenderer
from lit3d.render.pytorch3d import PyTorch3DRenderer

__all__ = ["Renderer", "MitsubaRenderer", "MitsubaEnvironmentRenderer", "PyTorch3DRenderer",
           "MaterialRenderer",
           "Environment", "ConstantEnvironment", "SkyGradient", "SunSky", "EnvironmentMap"]
