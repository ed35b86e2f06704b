"""Image losses of the MRD reconstructions (pure functions, tensors in and out).

Renders are linear radiance (B, 3, H, W); a network only ever sees them through
:func:`lit3d.render.tonemap.display` (Reinhard, then sRGB), as MRD does.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lit3d.models.base import LatentDistance
from lit3d.render.tonemap import display


def pixel_mae(images: Tensor, targets: Tensor) -> Tensor:
    """Mean absolute error of linear radiance, (B, 3, H, W) each -> scalar (the baseline loss)."""
    if images.shape != targets.shape:
        raise ValueError(f"render {tuple(images.shape)} and target {tuple(targets.shape)} differ")
    return (images - targets).abs().mean()


def dual_buffer_loss(images: Tensor, images_other: Tensor, targets: Tensor) -> Tensor:
    """Dual-buffer loss (Deng et al. 2022): ``mean((ŷ − y)·(ŷ' − y))`` for two renders ŷ, ŷ'
    of the same views with *independent* seeds, (B, 3, H, W) each -> scalar.

    Because the two renders' noises are independent, its expectation is the squared error of
    the noise-free image, ``mean((E[ŷ] − y)²)``, so it is an unbiased estimate of the loss
    of the converged render (``tests/test_mrd_material.py`` checks this over many seeds); the
    MSE of one render would add the render's variance and bias the optimum towards smooth,
    low-variance materials. MRD's eq. (10) writes the product squared, which is not unbiased
    (it is the product of fourth moments): lit3d implements Deng et al.'s estimator.
    """
    if not images.shape == images_other.shape == targets.shape:
        raise ValueError(f"renders {tuple(images.shape)}, {tuple(images_other.shape)} and target "
                         f"{tuple(targets.shape)} differ")
    return ((images - targets) * (images_other - targets)).mean()


def latents_of(model, images: Tensor) -> Tensor:
    """(B, 3, H, W) linear renders -> (B, D) latents of a zoo model fed display-encoded images."""
    return model(display(images))


def latent_loss(model, images: Tensor, target_latents: Tensor) -> Tensor:
    """Mean over the batch of the model's dissimilarity between the renders' latents and the
    targets' (B, D): ``1 − cosine``, or the LPIPS distance for ``lpips_vgg``
    (:meth:`lit3d.models.zoo.VisionModel.distance`)."""
    latents = latents_of(model, images)
    if isinstance(model, LatentDistance):
        return model.distance(latents, target_latents).mean()
    return (1 - F.cosine_similarity(latents, target_latents, dim=1)).mean()
