"""Response models: images (B, 3, H, W) -> responses (B, N), each with its own preprocessing."""

from lit3d.models.base import ResponseModel
from lit3d.models.cells import ComplexCell, SimpleCell
from lit3d.models.preprocessing import ImageNormalizer

__all__ = ["ResponseModel", "SimpleCell", "ComplexCell", "ImageNormalizer"]
