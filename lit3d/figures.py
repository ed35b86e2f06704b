"""Saving figures that explain themselves, and reading back what they say.

:func:`save_figure` writes a matplotlib figure as a PNG whose ``Description`` metadata holds a
JSON account of its text (:func:`describe`): the figure's title, and per panel its title, axis
labels, legend entries and, for colour bars, their label. :func:`read_description` reads it
back, so tests check that every panel is titled and labelled without comparing pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg back-end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def describe(fig) -> dict[str, Any]:
    """``{"title": suptitle, "axes": [{"title", "xlabel", "ylabel", "legend", "colorbar",
    "image"}, ...]}`` of a figure; ``colorbar`` is true for colour-bar axes (their label is the
    ``ylabel`` or ``xlabel``), ``image`` for panels that show an image."""
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
    axes = []
    for ax in fig.axes:
        legend = ax.get_legend()
        axes.append({
            "title": " ".join(t for t in (ax.get_title("left"), ax.get_title(),
                                          ax.get_title("right")) if t),
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
            "colorbar": hasattr(ax, "_colorbar"),
            "image": bool(ax.images),
        })
    return {"title": suptitle, "axes": axes}


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Saves ``fig`` as a PNG with :func:`describe` in its metadata and closes it."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, metadata={"Description": json.dumps(describe(fig))})
    pyplot().close(fig)
    return path


def read_description(path: str | Path) -> dict[str, Any]:
    """The :func:`describe` record stored in a PNG written by :func:`save_figure`."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text["Description"])
