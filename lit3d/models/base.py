"""The interface of every response model (simulated cells, encoding models, vision networks)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn


class ResponseModel(nn.Module):
    """``images (B, 3, H, W) in [0, 1] -> responses (B, N)``.

    The images are in the colour space the model declares: the 3D-MEI models (cells, V4) take
    the renders' linear RGB; vision networks (:class:`~lit3d.models.zoo.VisionModel`) take
    display-encoded sRGB by default (``input_space``), as MRD feeds them tone-mapped,
    sRGB-encoded renders. Subclasses implement :meth:`preprocess` (their own grayscale, resize
    and normalization: the modules never normalize for them) and :meth:`respond` on
    preprocessed inputs.
    """

    #: Number of output units N.
    num_outputs: int = 1

    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) renders -> the model's input tensor."""
        raise NotImplementedError

    def respond(self, inputs: Tensor) -> Tensor:
        """Preprocessed inputs -> (B, N) responses."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> "ResponseModel":
        """Response models are fixed measuring devices: they stay in eval mode (BatchNorm running
        statistics, no dropout, readout at its mean position) even inside a LightningModule
        that ``fit`` switches to training mode."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        return self.respond(self.preprocess(images))

    def optimal_images(self) -> Tensor | None:
        """(N, 3, H, W) images that drive each unit maximally, where that optimum is known
        (simulated cells); ``None`` otherwise."""
        return None


@runtime_checkable
class LatentDistance(Protocol):
    """A network with its own dissimilarity of latents (LPIPS: the squared Euclidean distance);
    the MRD latent loss uses ``1 − cosine`` for networks without one."""

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """(B, D), (B, D) latents -> (B,) dissimilarity."""
        ...
