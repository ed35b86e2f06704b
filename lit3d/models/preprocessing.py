"""Image preprocessing owned by the response models: grayscale, resize, mean/std, fixed norm.

Images are (B, C, H, W) tensors, channels first. 3D-MEI feeds every model an image normalized to
the model's mean/std and then scaled to a fixed L2 norm (25 by default, as in Pierzchlewicz et al.
2023), so only the image's pattern, not its overall brightness or contrast, drives the response.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Rec. 709 / sRGB luminance weights for linear RGB.
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)


def to_grayscale(images: Tensor) -> Tensor:
    """(B, 3, H, W) linear RGB -> (B, 1, H, W) luminance; (B, 1, H, W) passes through."""
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels (B, C, H, W), got shape {tuple(images.shape)}")
    weights = images.new_tensor(LUMINANCE_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def resize(images: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, C, H, W) to ``size``; no-op if equal.

    Enlarging leaves the antialiasing filter out: its support is then the bilinear kernel's, so
    the images are the same to float rounding, without the filter's slower backward pass."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    height, width = images.shape[-2:]
    if (height, width) == size:
        return images
    shrinking = size[0] < height or size[1] < width
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                         antialias=shrinking)


class ImageNormalizer(nn.Module):
    """``x -> (x - mean) / std``, then rescaled per image to L2 norm ``norm``.

    Args:
        mean: per-channel mean (float or one per channel) in the input's units, or ``None`` for
            each image's own mean (contrast relative to mean luminance).
        std: per-channel std, or ``None`` for each image's own std.
        norm: L2 norm of each normalized image over (C, H, W); ``None`` disables the rescaling.
    """

    def __init__(
        self,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        norm: float | None = 25.0,
    ):
        super().__init__()
        if norm is not None and norm <= 0:
            raise ValueError(f"norm must be > 0 or None, got {norm}")
        if std is not None and any(s <= 0 for s in torch.as_tensor(std).flatten().tolist()):
            raise ValueError(f"std must be > 0, got {std}")
        self.mean = mean
        self.std = std
        self.norm = norm

    @staticmethod
    def _channel_stat(value, images: Tensor) -> Tensor:
        return torch.as_tensor(value, dtype=images.dtype, device=images.device).reshape(1, -1, 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W) normalized images."""
        if self.mean is None:
            x = images - images.mean(dim=(1, 2, 3), keepdim=True)
        else:
            x = images - self._channel_stat(self.mean, images)
        if self.std is None:
            x = x / images.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
        else:
            x = x / self._channel_stat(self.std, images)
        if self.norm is not None:
            length = torch.linalg.vector_norm(x.flatten(1), dim=1).clamp(min=1e-12)
            x = x * (self.norm / length).view(-1, 1, 1, 1)
        return x
