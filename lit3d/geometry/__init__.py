"""Meshes, their connectivity, RBF deformation and the geometric regularizers (torch,
vectorized)."""

from lit3d.geometry.io import MeshFile, load_mesh, save_mesh
from lit3d.geometry.largesteps import LargeSteps, UniformAdam
from lit3d.geometry.mesh import Mesh, validate_mesh
from lit3d.geometry.primitives import IcoSphere, MeshSource, Sheet, Torus
from lit3d.geometry.procedural import BumpyTorus, Capsule, Peanut, RoundedBox, StarShape
from lit3d.geometry.rbf import RBFDeformation, VertexOffsets, rbf_displacement
from lit3d.geometry.remesh import mean_edge_length, remesh

__all__ = ["Mesh", "MeshSource", "Sheet", "IcoSphere", "Torus", "BumpyTorus", "MeshFile",
           "load_mesh", "save_mesh", "validate_mesh", "RBFDeformation", "VertexOffsets",
           "rbf_displacement", "LargeSteps", "UniformAdam", "remesh", "mean_edge_length",
           "StarShape", "RoundedBox", "Capsule", "Peanut"]
