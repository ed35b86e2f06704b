"""Differentiable renderers: ``render(vertices, faces, views) -> (B, 3, H, W)``.

Back-ends import their renderer library lazily, so importing this package is cheap.
"""

from lit3d.render.base import Renderer
from lit3d.render.mitsuba import MitsubaRenderer
from lit3d.render.pytorch3d import PyTorch3DRenderer

__all__ = ["Renderer", "MitsubaRenderer", "PyTorch3DRenderer"]
