"""Writing renders for people: linear radiance shown through the sRGB curve (clipped to
[0, 1], no tone mapping), as PNGs or as a figure of named rows and columns."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from lit3d.figures import pyplot, save_figure
from lit3d.render.tonemap import srgb_encode


def save_image(path: Path, image: Tensor, upscale: int = 1) -> Path:
    """Writes a (3, H, W) linear-RGB image as an sRGB PNG (nearest-neighbour ``upscale``)."""
    from PIL import Image

    rgb = srgb_encode(image.detach().float().cpu())
    array = (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
    picture = Image.fromarray(array)
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale),
                                 Image.NEAREST)
    picture.save(path)
    return path


def save_image_grid(path: Path, image: Tensor, rows: list[str], columns: list[str]) -> Path:
    """A (3, R·H, C·W) linear image of R × C renders as a figure whose rows and columns are
    named (e.g. reconstruction above target, one column per view)."""
    plt = pyplot()
    rgb = srgb_encode(image.detach().float().cpu())
    h, w = rgb.shape[1] // len(rows), rgb.shape[2] // len(columns)
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(2.2 * len(columns) + 0.6, 2.3 * len(rows) + 0.3))
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(rgb[:, r * h:(r + 1) * h, c * w:(c + 1) * w].permute(1, 2, 0).numpy(),
                      interpolation="nearest")
            ax.set_title(f"{row}, {column}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(row)
    fig.tight_layout()
    return save_figure(fig, path)
