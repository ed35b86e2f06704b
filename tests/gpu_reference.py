"""The scene of the CUDA-vs-LLVM image check (``test_gpu``) and its stored LLVM render.

``python tests/gpu_reference.py`` renders it on the CPU and writes ``tests/data/llvm_sphere.pt``;
``test_render`` checks that the stored image is what the CPU renders today.
"""

from pathlib import Path

import torch

REFERENCE = Path(__file__).with_name("data") / "llvm_sphere.pt"


def reference_scene():
    """((vertices, faces), views, renderer options): an ico-sphere seen from two cameras at
    30° elevation, lit by the point light at each camera, 48 px, 256 spp, seed 1."""
    from lit3d.data.views import orbit_views
    from lit3d.geometry.primitives import IcoSphere

    mesh = IcoSphere(subdivisions=2, radius=1.0).build()
    views = orbit_views(torch.tensor([0.0, 120.0]), 30.0, distance=10.0)
    return (mesh.vertices, mesh.faces), views, dict(image_size=48, spp=256)


def render_on_cpu() -> torch.Tensor:
    """(2, 3, 48, 48) linear radiance of the reference scene, ``llvm_ad_rgb``."""
    from lit3d.render.mitsuba import MitsubaRenderer

    (vertices, faces), views, options = reference_scene()
    return MitsubaRenderer(**options)(vertices, faces, views, seed=1)


if __name__ == "__main__":
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save(render_on_cpu(), REFERENCE)
    print(f"wrote {REFERENCE}")
