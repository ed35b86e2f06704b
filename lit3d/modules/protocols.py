"""Contracts between the optimization modules and the callbacks and commands that serve them.

Every module offers :class:`Evaluated` and :class:`HasMesh` (or, with one stimulus per unit,
:class:`HasMeshes`) and :class:`Previews`; MRD's adds :class:`Snapshots` (early stopping with
the best state restored) and :class:`HasEpochHistory`, a shape reconstruction
:class:`Remeshable`; the 3D-MEIs :class:`ShowsObjects`. Modules whose loss reaches mesh
vertices through the renderer offer :class:`VertexObjective` (``lit3d gradcheck``). Callbacks
check these with ``isinstance`` and name the missing contract when a module lacks one they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

    from lit3d.analysis.gradcheck import VertexLoss
    from lit3d.data.views import Views
    from lit3d.geometry.mesh import Mesh


@runtime_checkable
class Evaluated(Protocol):
    """A module that measures its final stimulus: :class:`callbacks.FitArtifacts` writes the
    measures to ``metrics.json`` and prints ``headline_metric`` and ``headline_extras`` as the
    run's last line."""

    headline_metric: str
    headline_extras: tuple[str, ...]

    def final_evaluation(self) -> dict[str, Any]:
        """Final measures (floats, lists), plus optionally ``"images"`` (B, 3, H, W) with
        ``"image_rows"``/``"image_columns"`` labels and a ``"summary"`` dict."""
        ...


@runtime_checkable
class HasMesh(Protocol):
    """A module whose stimulus is one triangle mesh."""

    def current_mesh(self) -> Mesh:
        """The current mesh: (V, 3) vertices (world units) and (F, 3) faces."""
        ...


@runtime_checkable
class HasMeshes(Protocol):
    """A module with one mesh per unit (``MEI3DPopulation``)."""

    def meshes(self) -> dict[str, Mesh]:
        """``{name: mesh}``, names usable in file names (``neuron_<n>``)."""
        ...


@runtime_checkable
class Previews(Protocol):
    """A module that can show its current stimulus (W&B media)."""

    def preview_images(self) -> Tensor:
        """(B, 3, H, W) linear renders of the current stimulus."""
        ...


@runtime_checkable
class Snapshots(Protocol):
    """A module whose state can be saved and put back (early stopping restores the best)."""

    def snapshot(self) -> dict[str, Tensor]:
        """A detached copy of the optimized state (any topology)."""
        ...

    def restore(self, snapshot: dict[str, Tensor]) -> None:
        """Puts a :meth:`snapshot` back."""
        ...


@runtime_checkable
class Remeshable(Protocol):
    """A shape reconstruction whose mesh :class:`callbacks.Remesh` replaces: ``set_mesh`` gives
    it a new parameterization, ``remesh_count`` counts the remeshes and ``lr_scale`` (a 0-dim
    buffer) holds the decay :class:`callbacks.DecayLROnRemesh` applies."""

    remesh_count: int
    lr_scale: Tensor

    def current_mesh(self) -> Mesh: ...

    def set_mesh(self, vertices: Tensor, faces: Tensor) -> None:
        """Continues the optimization from this mesh ((V, 3) float, (F, 3) long)."""
        ...


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


@runtime_checkable
class VertexObjective(Protocol):
    """A module whose loss reaches its mesh's vertices through the renderer: ``lit3d
    gradcheck`` compares the renderer's gradient of that loss with finite differences."""

    def current_mesh(self) -> Mesh: ...

    def vertex_objective(self, views: Views) -> VertexLoss:
        """``loss(vertices (V, 3), seed, spp) -> scalar``: the configured loss of renders of
        ``views`` with the current topology (regularizers, which bypass the renderer, left
        out)."""
        ...
