"""Time of one differentiable render (forward + backward w.r.t. vertices) in the default 3D-MEI
scene, per back-end and integrator, with Dr.Jit's kernels recorded once and replayed
(``MitsubaRenderer(freeze=True)``, the default) or traced on every call. Prints one line per
setting; the figures back the README.

    python bench/render_step.py [--size 64] [--spp 16] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lit3d.data.views import overhead_views
from lit3d.geometry.primitives import Sheet
from lit3d.render.mitsuba import MitsubaRenderer


def time_step(renderer, vertices, faces, views, repeats: int) -> float:
    times = []
    for i in range(repeats + 2):
        v = vertices.clone().requires_grad_(True)
        start = time.perf_counter()
        renderer(v, faces, views, seed=i).mean().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])  # the first calls compile kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--spp", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    mesh = Sheet(resolution=48).build()
    vertices = mesh.vertices.clone()
    vertices[:, 2] = 0.1 * torch.sin(3 * vertices[:, 0])
    views = overhead_views()
    print(f"sheet: {mesh.num_vertices} vertices, {args.size}x{args.size} px, {args.spp} spp, "
          f"torch threads {torch.get_num_threads()}")
    for integrator in ("direct_projective", "prb"):
        for freeze in (True, False):
            renderer = MitsubaRenderer(image_size=args.size, spp=args.spp, integrator=integrator,
                                       freeze=freeze)
            seconds = time_step(renderer, vertices, mesh.faces, views, args.repeats)
            kind = "recorded kernels replayed" if freeze else "traced every call"
            print(f"mitsuba {integrator} ({kind}): {seconds * 1000:.1f} ms per render + "
                  "backward")
    try:
        from lit3d.render.pytorch3d import PyTorch3DRenderer

        renderer = PyTorch3DRenderer(image_size=args.size)
    except ImportError:
        print("pytorch3d: not installed")
        return
    seconds = time_step(renderer, vertices, mesh.faces, views, max(args.repeats // 4, 1))
    print(f"pytorch3d: {seconds * 1000:.1f} ms per render + backward")


if __name__ == "__main__":
    main()
