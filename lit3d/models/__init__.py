"""Response models: images (B, 3, H, W) -> responses or latents (B, N), each with its own
preprocessing: simulated cells, the macaque-V4 encoding model, the vision-network zoo."""

from lit3d.models.base import ResponseModel
from lit3d.models.cells import ComplexCell, SimpleCell
from lit3d.models.preprocessing import ImageNormalizer
from lit3d.models.v4 import GaussianReadout, V4EncodingModel
from lit3d.models.weights import WeightsError, fetch_weights, load_weights
from lit3d.models.zoo import ZOO, VisionModel

__all__ = ["ResponseModel", "SimpleCell", "ComplexCell", "ImageNormalizer", "GaussianReadout",
           "V4EncodingModel", "VisionModel", "ZOO", "WeightsError", "fetch_weights",
           "load_weights"]
