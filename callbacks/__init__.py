"""Lightning callbacks of lit3d (a top-level package installed with it)."""

from callbacks.artifacts import FitArtifacts
from callbacks.early_stopping import EarlyStoppingRestoreBest
from callbacks.last_checkpoint import LastCheckpoint
from callbacks.media import LogMedia
from callbacks.nonfinite import SkipNonFinite
from callbacks.remesh import DecayLROnRemesh, Remesh

__all__ = ["FitArtifacts", "Remesh", "DecayLROnRemesh", "EarlyStoppingRestoreBest",
           "SkipNonFinite", "LogMedia", "LastCheckpoint"]
