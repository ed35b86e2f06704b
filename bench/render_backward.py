"""The render's backward pass in each shipped 3D-MEI config: as shipped against the renderer as
it was before the gradient sample counts, the forward-state reuse and the stored silhouette
samples (``silhouette_spp`` and ``shading_spp`` None: both gradient terms at ``spp``;
``reuse_forward_state=False``: the backward pass sets the scene's buffers again;
``store_silhouette_samples=False``: Mitsuba's own schedule, which computes each silhouette
sample twice; ``replay_shading_adjoint=False``: the whole adjoint traced, none of it replayed).

Each config is built as ``fit`` builds it (LightningCLI, ``run=False``; network weights random
where they are not public; a population's first unit) and trained ``--train-steps`` 150 steps
of its own objective, so that the mesh has the folds and silhouettes a fit makes. A repeat
renders the config's training views and times ``autograd.grad`` of the images with respect to
the vertices; the two settings alternate in blocks of ``--block`` repeats, the first block of
each dropped. Ratio = shipped / before.

Target: <= 0.5 in every config. The last line is ``render_backward ratio=<worst> target<=0.5``;
the exit status is 1 when it is missed. Results go into ``bench/results.json`` under
``render_backward``.

    python bench/render_backward.py [--configs mei3d_simple_cell ...] [--blocks 6]
        [--overrides "--model.init_args.renderer.init_args.silhouette_spp 2"]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

RESULTS = Path(__file__).with_name("results.json")
TARGET = 0.5
CONFIGS = ["mei3d_simple_cell", "mei3d_simple_cell_sphere", "mei3d_complex_cell",
           "mei3d_complex_cell_sphere", "mei3d_population", "mei3d_v4"]
OFFLINE = {"mei3d_v4": ["--model.init_args.response_model.init_args.weights", "null"]}


def silhouette_sample_bytes() -> int:
    """Bytes a stored primary-silhouette sample holds: the ``SilhouetteSample3f`` and its RGB
    radiance difference (what ``store_silhouette_samples`` keeps until the backward ends)."""
    from lit3d.render.backend import import_mitsuba

    mi, dr = import_mitsuba("llvm_ad_rgb")

    def size(x) -> int:
        if dr.is_array_v(x) and dr.depth_v(x) == 1:
            return dr.itemsize_v(x)
        if dr.is_array_v(x):
            return sum(size(x[i]) for i in range(len(x)))
        return sum(size(getattr(x, k)) for k in type(x).DRJIT_STRUCT)

    return size(dr.zeros(mi.SilhouetteSample3f, 1)) + size(mi.Color3f(0))


def measure(name: str, blocks: int, block: int, train_steps: int,
            overrides: list[str]) -> dict:
    from step_breakdown import build

    from lit3d.modules.mei3d_population import MEI3DPopulation

    module, views = build(name, OFFLINE.get(name, []) + overrides)
    if isinstance(module, MEI3DPopulation):  # every unit renders alike: time the first
        module = module.units[0]
    renderer, faces = module.renderer, module.faces
    optimizer = torch.optim.Adam(module.param_groups())
    for step in range(train_steps):  # the config's own objective: the folds a fit makes
        loss, _, _ = module.objective(views, seed=module.step_seed(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    vertices = module.vertices().detach()
    generator = torch.Generator().manual_seed(0)
    settings = {"before": (None, None, False, False, False),
                "shipped": (renderer.silhouette_spp, renderer.shading_spp, True, True, True)}
    times: dict[str, list[float]] = {k: [] for k in settings}
    step = 0
    for _ in range(blocks):
        for key, (silhouette_spp, shading_spp, reuse, store, replay) in settings.items():
            renderer.silhouette_spp, renderer.shading_spp = silhouette_spp, shading_spp
            renderer.reuse_forward_state = reuse
            renderer.store_silhouette_samples = store
            renderer.replay_shading_adjoint = replay
            for _ in range(block):
                v = vertices.clone().requires_grad_(True)
                images = renderer(v, faces, views, seed=step)
                weights = torch.rand(images.shape, generator=generator)
                start = time.perf_counter()
                torch.autograd.grad(images, v, weights)
                times[key].append(time.perf_counter() - start)
                step += 1
    before = statistics.median(times["before"][block:])
    shipped = statistics.median(times["shipped"][block:])
    return {"silhouette_spp": settings["shipped"][0], "shading_spp": settings["shipped"][1],
            "spp": renderer.spp,
            "vertices": int(vertices.shape[0]), "views_per_step": len(views),
            "before_ms": round(1000 * before, 1), "shipped_ms": round(1000 * shipped, 1),
            "stored_mb": round(silhouette_sample_bytes() * len(views) * renderer.image_size ** 2
                               * (settings["shipped"][0] or renderer.spp) / 2**20, 2),
            "ratio": round(shipped / before, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=CONFIGS)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--overrides", default="",
                        help="fit options applied to every config, e.g. a candidate setting: "
                             "'--model.init_args.renderer.init_args.shading_spp 4'")
    args = parser.parse_args()
    results = {}
    for name in args.configs:
        results[name] = r = measure(name, args.blocks, args.block, args.train_steps,
                                     shlex.split(args.overrides))
        print(f"{name}: render backward {r['before_ms']} -> {r['shipped_ms']} ms "
              f"(x{r['ratio']}; silhouette_spp {r['silhouette_spp']}, shading_spp "
              f"{r['shading_spp']} of spp {r['spp']}, "
              f"{r['vertices']} vertices, {r['views_per_step']} view(s); silhouette samples "
              f"stored: {r['stored_mb']} MB)", flush=True)
    record = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    record["render_backward"] = {**record.get("render_backward", {}),  # others kept
                                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                            f"torch threads {torch.get_num_threads()}",
                                 **results}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    worst = max(r["ratio"] for r in results.values())
    print(f"render_backward ratio={worst} target<={TARGET}")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
