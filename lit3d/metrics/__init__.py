"""Metrics of stimuli and runs."""

from lit3d.metrics.gabor import GaborFit, fit_gabor, phase_difference_deg

__all__ = ["GaborFit", "fit_gabor", "phase_difference_deg"]
