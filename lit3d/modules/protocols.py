"""Contracts between the optimization modules and the callbacks that serve them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ShowsObjects(Protocol):
    """A module whose stimuli are objects to be seen from around them (3D-MEIs):
    :class:`callbacks.FitArtifacts` asks it for its object figures after the fit."""

    def write_object_figures(self, out: Path, results: dict[str, Any], size: int = 512,
                             turntable_size: int = 320, spp: int = 32) -> list[Path]:
        """Writes the object figure(s) (panels ``size`` pixels wide) and turntable(s)
        (``turntable_size`` pixels) of the current stimuli into ``out``, rendered with ``spp``
        samples per pixel and titled with the final ``results`` (``final_evaluation``'s);
        returns the files."""
        ...


@runtime_checkable
class HasEpochHistory(Protocol):
    """A module that measures itself every validation epoch (the MRD reconstructions):
    :class:`callbacks.FitArtifacts` plots those measures per epoch."""

    def epoch_history(self) -> dict[str, list[tuple[int, float]]]:
        """``{name: [(epoch, value), ...]}`` of the per-epoch measures (names with units)."""
        ...
