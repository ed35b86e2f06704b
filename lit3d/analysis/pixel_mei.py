"""The pixel-space MEI baseline the 3D-MEI paper compares against (Fig. 1B, right).

Gradient ascent on the model's *input* (its preprocessed image: grayscale, resized, normalized,
shape ``(1, C, S, S)``), as in the sinzlab MEI tools (Walker et al. 2019; Pierzchlewicz et al.
2023): every step the gradient is preconditioned by a Gaussian blur (suppressing the
high-frequency patterns a raw gradient favours), a gradient-ascent step of ``lr × norm`` in the
direction of the blurred gradient is taken (plain ascent, as those tools do: Adam's per-pixel
scaling drives the image towards the *sign* of the gradient, measured 0.48 of the optimum on a
simple cell), and the image is projected back to the fixed L2 norm (25), the same norm every 3D render is scaled to before the model sees
it. Its response is therefore directly comparable to a 3D-MEI's and to the unit's optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """(B, C, H, W) blurred per channel by a Gaussian of std ``sigma`` pixels (reflect pad);
    ``sigma <= 0`` returns the input."""
    if sigma <= 0:
        return images
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@dataclass
class PixelMEI:
    """Result: ``image`` (1, C, S, S) model input at the fixed norm, its ``response``, and the
    response after every step (``history``)."""

    image: Tensor
    response: float
    history: list[float] = field(default_factory=list)


def pixel_mei(model, neuron: int = 0, steps: int = 300, lr: float = 0.1,
              blur_sigma: float = 1.0, norm: float = 25.0, input_size: int | None = None,
              seed: int = 0) -> PixelMEI:
    """Pixel-space MEI of unit ``neuron`` of a :class:`~lit3d.models.base.ResponseModel`.

    Args:
        steps: ascent steps. lr: step length as a fraction of ``norm``.
        blur_sigma: std of the Gaussian that preconditions the gradient, input pixels.
        norm: L2 norm the image is projected to after every step (3D-MEI's fixed norm).
        input_size: side of the render used to discover the input shape (default: the
            model's ``input_size`` attribute, else 64).
        seed: seed of the random start (white noise at the fixed norm).
    """
    if steps < 1 or lr <= 0 or norm <= 0:
        raise ValueError("need steps >= 1, lr > 0 and norm > 0")
    size = input_size or getattr(model, "input_size", 64)
    with torch.no_grad():
        shape = model.preprocess(torch.rand(1, 3, size, size)).shape
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(shape, generator=g)
    image = (image * norm / image.norm()).requires_grad_(True)
    history = []
    for _ in range(steps):
        response = model.respond(image)[0, neuron]
        (gradient,) = torch.autograd.grad(response, image)
        with torch.no_grad():
            gradient = gaussian_blur(gradient, blur_sigma)
            image += lr * norm * gradient / gradient.norm().clamp(min=1e-12)
            image.mul_(norm / image.norm().clamp(min=1e-12))
        history.append(float(response.detach()))
    with torch.no_grad():
        final = float(model.respond(image)[0, neuron])
    return PixelMEI(image.detach(), final, history)


def plot_comparison(path: str | Path, responses: dict[str, float],
                    optimum: float | None = None, title: str = "") -> Path:
    """Bar plot of responses (e.g. ``{"3D-MEI": r3, "pixel MEI": rp}``), normalized by
    ``optimum`` when given (then the y axis is the normalized response)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(responses)
    values = [responses[n] / optimum if optimum else responses[n] for n in names]
    fig, ax = plt.subplots(figsize=(3.5, 3.5))
    bars = ax.bar(names, values, color=["tab:blue", "tab:orange", "tab:green"][:len(names)])
    ax.bar_label(bars, fmt="%.3f")
    ax.set_ylabel("normalized response" if optimum else "response")
    if optimum:
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
