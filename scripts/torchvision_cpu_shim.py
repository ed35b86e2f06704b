"""Start-up shim for a CUDA-built torchvision on CPU-only torch (installed by scripts/setup.sh).

The only torchvision wheel matching torch 2.13 is a CUDA build; with CPU torch its C extension
fails to load and ``import torchvision`` raises ``operator torchvision::nms does not exist``.
lightning and torchmetrics import torchvision, so every process (DDP-spawned ranks included)
needs the repair before that import. setup.sh copies this file into site-packages with a
``.pth`` line that imports it at interpreter start-up; it costs nothing until something imports
torchvision, and then runs ``lit3d._compat.ensure_torchvision_ops`` (which does nothing when the
extension loads).
"""

import sys


class _RepairTorchvisionOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            try:
                from lit3d._compat import ensure_torchvision_ops

                ensure_torchvision_ops()
            except ImportError:
                pass
        return None


if not any(type(f).__name__ == "_RepairTorchvisionOnImport" for f in sys.meta_path):
    sys.meta_path.insert(0, _RepairTorchvisionOnImport())
