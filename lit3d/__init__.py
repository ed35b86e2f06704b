"""lit3d: probing neurons and vision networks with physically grounded 3D stimuli."""

from lit3d._compat import ensure_torchvision_ops

ensure_torchvision_ops()

__version__ = "0.1.0"
