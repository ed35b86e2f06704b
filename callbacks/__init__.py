"""Lightning callbacks of lit3d (a top-level package installed with it)."""

from callbacks.artifacts import FitArtifacts

__all__ = ["FitArtifacts"]
