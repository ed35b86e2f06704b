"""Metrics of stimuli and runs."""

from lit3d.metrics.chamfer import chamfer_distance, sample_surface
from lit3d.metrics.gabor import GaborFit, fit_gabor, phase_difference_deg
from lit3d.metrics.rsa import KendallRSA, kendall_rsa, similarity_matrix, upper_triangle
from lit3d.metrics.similarity import HypersphereSimilarity, hypersphere_similarity

__all__ = ["chamfer_distance", "sample_surface", "GaborFit", "fit_gabor", "phase_difference_deg",
           "KendallRSA", "kendall_rsa", "similarity_matrix", "upper_triangle",
           "HypersphereSimilarity", "hypersphere_similarity"]
