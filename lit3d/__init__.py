"""lit3d: probing neurons and vision networks with physically grounded 3D stimuli."""

__version__ = "0.1.0"
