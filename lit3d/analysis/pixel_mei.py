"""The pixel-space MEI baseline the 3D-MEI paper compares against (Fig. 1B, right).

Gradient ascent on the model's *input* (its preprocessed image: grayscale, resized, normalized,
shape ``(1, C, S, S)``), as in the sinzlab MEI tools (Walker et al. 2019; Pierzchlewicz et al.
2023): every step the gradient is preconditioned by a Gaussian blur (suppressing the
high-frequency patterns a raw gradient favours), a gradient-ascent step of ``lr × norm`` in the
direction of the blurred gradient is taken (plain ascent, as those tools do: Adam's per-pixel
scaling drives the image towards the *sign* of the gradient, measured 0.48 of the optimum on a
simple cell), and the image is projected back to the fixed L2 norm (25), the same norm every
3D render is scaled to before the model sees it. Its response is therefore directly comparable
to a 3D-MEI's and to the unit's optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from lit3d.console import progress
from lit3d.errors import InputError
from lit3d.figures import pyplot, save_figure


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
        raise InputError("need steps >= 1, lr > 0 and norm > 0")
    size = input_size or getattr(model, "input_size", 64)
    with torch.no_grad():
        shape = model.preprocess(torch.rand(1, 3, size, size)).shape
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(shape, generator=g)
    image = (image * norm / image.norm()).requires_grad_(True)
    history = []
    for _ in progress(range(steps), "pixel MEI"):
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
    plt = pyplot()
    names = list(responses)
    values = [responses[n] / optimum if optimum else responses[n] for n in names]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    bars = ax.bar(names, values, color=["tab:blue", "tab:orange", "tab:green"][:len(names)],
                  width=0.6)
    ax.bar_label(bars, fmt="%.3f", label_type="center", color="white", fontweight="bold")
    ax.set_ylabel("normalized response (1 = the unit's optimum)" if optimum else "response")
    ax.set_xlabel("stimulus")
    top = max(values + [1.0 if optimum else 0.0])
    ax.set_ylim(0, top * 1.25)
    if optimum:
        ax.axhline(1.0, color="k", lw=0.8, ls="--", label="optimum (the cell's own filter)")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "3D-MEI vs pixel MEI")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_inputs(path: str | Path, inputs: dict[str, Tensor], responses: dict[str, float],
                title: str = "", size_px: int = 320) -> Path:
    """The model's inputs side by side (each (C, S, S), channels averaged), every panel
    ``size_px`` pixels wide with its response in the title and one shared, labelled colour
    scale (the inputs are normalized: mean 0 at the model's fixed norm)."""
    plt = pyplot()
    arrays = {k: v.detach().float().mean(0).cpu().numpy() for k, v in inputs.items()}
    limit = max(float(abs(a).max()) for a in arrays.values()) or 1.0
    dpi = 100
    fig, axes = plt.subplots(1, len(arrays), figsize=(len(arrays) * size_px / dpi + 1.2,
                                                      size_px / dpi + 0.9), squeeze=False)
    for ax, (name, array) in zip(axes[0], arrays.items()):
        image = ax.imshow(array, cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"{name}: response {responses[name]:.4g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[0].tolist(), label="model input (normalized units)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=dpi)
