"""Compatibility shims applied once, when ``lit3d`` is imported.

torchvision's only wheel matching torch 2.13 is a CUDA build: on CPU torch its C extension fails to
load and ``import torchvision`` raises ``RuntimeError: operator torchvision::nms does not exist``
(while registering fake kernels for the detection ops). torchmetrics, lightning, timm, open_clip and
lpips all import torchvision, so that error would break everything. When (and only when) the
extension really fails to load, the two operator schemas torchvision registers kernels for are
defined here; the model code works and only the detection ops stay unavailable.
Import ``lit3d`` before ``lightning``/``torchmetrics`` for the shim to take effect.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_LIBRARY = None  # keeps the schema definitions alive


def _has_nms() -> bool:
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018
        return True
    except (AttributeError, RuntimeError):
        return False


def ensure_torchvision_ops() -> bool:
    """Makes ``import torchvision`` work on CPU torch; returns True if the shim was applied."""
    global _LIBRARY
    if _LIBRARY is not None or "torchvision" in sys.modules:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import torch

    if _has_nms():
        return False
    for library in sorted(Path(spec.submodule_search_locations[0]).glob("_C*.so")):
        try:
            torch.ops.load_library(str(library))
        except (OSError, RuntimeError):
            continue
        if _has_nms():
            return False
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return True


def nullable(value):
    """``None`` for ``None`` and for the strings a command-line ``null`` can arrive as
    (jsonargparse passes ``"None"`` to some ``str | None`` parameters); else ``value``."""
    return None if value is None or (isinstance(value, str) and value in ("None", "null", "")) \
        else value
