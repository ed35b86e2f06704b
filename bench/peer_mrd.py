"""lit3d's MRD shape step against the MRD reference code's, at equal settings.

The reference is the MRD paper's code (github.com/ag-perception-wallis-lab/MRD), imported from a
checkout the user provides (``--mrd PATH``); nothing of it is copied here. Its step is its
training loop's body for one view (``src/shape.py``: set the vertices from Large Steps
``u``, ``params.update()``, ``mi.render``, ``linear_to_srgb_ldr``, the loss, ``dr.backward``,
Mitsuba's uniform Adam; with a network also the latent it stores and ``compute_similarity``, as
that loop does). lit3d's step is ``MRDShape``'s under Lightning's ``Trainer`` (the demo config).

Equal settings on both sides: the same initial ico-sphere (``--subdivisions`` 4: 2,562
vertices), target mesh, environment map (an EXR written here), ``--size`` 96² pixels, ``--spp``
4, 16 Fibonacci views, ``direct_projective`` with ``sppi=0``, Large Steps λ 15, lr 0.1, one
view a step; for the latent loss both run EfficientNet-Lite0 (random weights: same cost).
Steps alternate in blocks of ``--block`` 5 between the two (first block of each dropped as
warm-up); medians. ``speedup = MRD step / lit3d step``.

Targets: >= 1.5 with the pixel loss, >= 3 with the latent loss. The last line is
``mrd_speedup=<pixel> target>=1.5 latent_speedup=<latent> target>=3``; the exit status is 1
when a target measured is missed. Results go into ``bench/results.json`` under ``peer_mrd``.
Without ``--mrd`` it says so and exits 0.

    python bench/peer_mrd.py --mrd /path/to/MRD [--losses pixel latent] [--blocks 6]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).with_name("results.json")
TARGETS = {"pixel": 1.5, "latent": 3.0}
#: Libraries MRD's ``model.py``/``utils.py`` import at module level for networks and analyses
#: that its shape step does not run; stand-ins are installed only where they are missing.
MRD_OPTIONAL = ["transformers", "diffusers", "diffusers.models", "diffusers.models.autoencoders",
                "diffusers.models.autoencoders.autoencoder_kl", "modelvshuman",
                "modelvshuman.models", "modelvshuman.models.pytorch",
                "modelvshuman.models.pytorch.model_zoo", "lpips", "sklearn",
                "sklearn.decomposition"]


class _Absent(types.ModuleType):
    """A module that is not installed: any attribute is a placeholder class that fails if used."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise RuntimeError(f"{self.__name__}.{name} is not installed (not needed here)")

        return type(name, (), {"__init__": unavailable})


def import_mrd(path: Path) -> dict[str, types.ModuleType]:
    """MRD's ``scenes``, ``image_processing``, ``model`` and ``utils`` modules from the checkout."""
    src = path / "src"
    if not (src / "shape.py").is_file():
        raise SystemExit(f"{path} is not a checkout of the MRD repository (no src/shape.py)")
    from lit3d.render.backend import import_mitsuba

    import_mitsuba("llvm_ad_rgb")  # MRD's main.py sets the variant before importing these
    os.environ.setdefault("DEFAULT_MI_VARIANT", "llvm_ad_rgb")
    for name in MRD_OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _Absent(name)
    sys.path.insert(0, str(src))
    return {name: importlib.import_module(name)
            for name in ("scenes", "image_processing", "model", "utils")}


def write_assets(directory: Path, subdivisions: int) -> dict[str, Path]:
    """The shared scene files: target and initial meshes (PLY), environment map (EXR)."""
    from lit3d.geometry.io import save_mesh
    from lit3d.geometry.primitives import IcoSphere
    from lit3d.geometry.procedural import StarShape
    from lit3d.render.backend import bitmap_io_threads, import_mitsuba
    from lit3d.render.environment import SunSky

    mi, _ = import_mitsuba("llvm_ad_rgb")
    target = StarShape(lobes=6, amplitude=0.35, sharpness=8.0, radius=0.8,
                       subdivisions=5).build()
    initial = IcoSphere(subdivisions=subdivisions, radius=1.0).build()
    paths = {"target": save_mesh(directory / "target.ply", target.vertices, target.faces),
             "initial": save_mesh(directory / "initial.ply", initial.vertices, initial.faces),
             "envmap": directory / "sky.exr"}
    with bitmap_io_threads():
        mi.Bitmap(SunSky(sun_radiance=50.0).image(64)).write(str(paths["envmap"]))
    return paths


class MRDStep:
    """The MRD reference loop's step for one view, with MRD's own functions."""

    def __init__(self, mrd: dict, assets: dict[str, Path], loss: str, size: int, spp: int,
                 views: int, lambda_: float, lr: float, network=None):
        import drjit as dr
        import mitsuba as mi

        self.mi, self.dr, self.mrd = mi, dr, mrd
        self.spp, self.size, self.loss = spp, size, loss
        scene = {"type": "scene", "integrator": {"type": "direct_projective", "sppi": 0},
                 "emitter": {"type": "envmap", "filename": str(assets["envmap"])},
                 "shape": {"type": "ply", "filename": str(assets["target"]),
                           "bsdf": {"type": "diffuse"}}}
        self.sensors = mrd["scenes"].setup_views(views, width=size, height=size)
        target_scene = mi.load_dict(scene)
        self.targets = [mi.render(target_scene, sensor=s, spp=64, seed=0) for s in self.sensors]
        scene["shape"]["filename"] = str(assets["initial"])
        self.scene = mi.load_dict(scene)
        self.params = mi.traverse(self.scene)
        self.key = "shape.vertex_positions"
        self.ls = mi.ad.largesteps.LargeSteps(self.params[self.key], self.params["shape.faces"],
                                              lambda_)
        self.optimizer = mi.ad.Adam(lr=lr, uniform=True)
        self.optimizer["u"] = self.ls.to_differential(self.params[self.key])
        self.model = mrd["model"].MAE() if loss == "pixel" else network
        self.latents: list = []

    def __call__(self, step: int) -> None:
        mi, dr = self.mi, self.dr
        index = step % len(self.sensors)
        target = self.targets[index]
        self.params[self.key] = self.ls.from_differential(self.optimizer["u"])
        self.params.update()
        render = mi.render(self.scene, self.params, sensor=self.sensors[index], spp=self.spp,
                           seed=index)
        render = self.mrd["image_processing"].linear_to_srgb_ldr(render)
        loss = self.model.lossfn(render, target)
        dr.backward(loss)
        self.optimizer.step()
        if self.loss == "latent":
            self.latents.append(self.model(render).detach().cpu().flatten().numpy())
            self.mrd["utils"].compute_similarity(render, target, self.model,
                                                 shape=(1, 3, self.size, self.size))
        loss.torch().item()


def mrd_network(mrd: dict, net):
    """A zoo network in MRD's model interface (its ``Resnet`` class's pattern: the loss through
    ``dr.wrap``, the latent of an image either way round)."""
    import drjit as dr
    import torch
    import torch.nn.functional as F

    class ZooNetwork(mrd["model"].ModelMixin):
        def __str__(self):
            return "ZooNetwork"

        @dr.wrap("drjit", "torch")
        def lossfn(self, render, target):
            latent = self(render)
            with torch.no_grad():
                target = self(target)
            return 1 - F.cosine_similarity(latent, target).mean()

        def __call__(self, render):
            if not torch.is_tensor(render):
                render = render.torch()
            if render.ndim == 3:  # (H, W, 3) from the renderer
                render = render.permute(2, 0, 1)[None]
            return net(render)

    return ZooNetwork()


def lit3d_trainer(assets: dict[str, Path], loss: str, size: int, spp: int, views: int,
                  lambda_: float, lr: float, steps: int, out: Path):
    """(trainer, module, datamodule) of the MRD demo config at these settings."""
    from lit3d.cli import build as build_cli

    M = "--model.init_args."
    cli = build_cli([
        "--config", str(ROOT / "configs" / "mrd_demo.yaml"), "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.max_epochs", "1000",
        "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
        "--trainer.callbacks", "[]", "--trainer.default_root_dir", str(out),
        M + "target", "lit3d.geometry.MeshFile", M + "target.init_args.path",
        str(assets["target"]), M + "target.init_args.center", "false",
        M + "initial", "lit3d.geometry.MeshFile", M + "initial.init_args.path",
        str(assets["initial"]), M + "initial.init_args.center", "false",
        M + "renderer.init_args.image_size", str(size),
        M + "renderer.init_args.spp", str(spp),
        M + "renderer.init_args.environment", "lit3d.render.environment.EnvironmentMap",
        M + "renderer.init_args.environment.init_args.path", str(assets["envmap"]),
        M + "loss", loss, M + "model.init_args.weights", "null",
        M + "lambda_", str(lambda_), M + "lr", str(lr),
        "--data.init_args.num_views", str(views), "--data.init_args.batch_size", "1",
    ])
    return cli.trainer, cli.model, cli.datamodule


def compare(mrd: dict, assets: dict[str, Path], loss: str, args, out: Path) -> dict:
    """Alternating blocks: ``block`` lit3d steps (timed by a callback), then ``block`` MRD
    steps, ``blocks`` times (the first block of each is warm-up)."""
    import lightning.pytorch as pl

    steps = args.block * args.blocks
    trainer, module, datamodule = lit3d_trainer(assets, loss, args.size, args.spp, args.views,
                                                15.0, 0.1, steps, out)
    network = mrd_network(mrd, module.model) if loss == "latent" else None
    reference = MRDStep(mrd, assets, loss, args.size, args.spp, args.views, 15.0, 0.1, network)
    times: dict[str, list[float]] = {"lit3d": [], "mrd": []}

    class Alternate(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            times["lit3d"].append(time.perf_counter() - self.start)
            if (batch_idx + 1) % args.block == 0:
                for i in range(args.block):
                    start = time.perf_counter()
                    reference(batch_idx + i)
                    times["mrd"].append(time.perf_counter() - start)

    trainer.callbacks.append(Alternate())
    trainer.fit(module, datamodule=datamodule)
    lit3d = statistics.median(times["lit3d"][args.block:])
    mrd_ms = statistics.median(times["mrd"][args.block:])
    return {"lit3d_ms": round(1000 * lit3d, 1), "mrd_ms": round(1000 * mrd_ms, 1),
            "speedup": round(mrd_ms / lit3d, 2), "target": TARGETS[loss],
            "steps_each": len(times["lit3d"]) - args.block}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mrd", type=Path, help="a checkout of the MRD repository")
    parser.add_argument("--losses", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--spp", type=int, default=4)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--subdivisions", type=int, default=4)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()
    if args.mrd is None:
        print("no MRD checkout given (--mrd PATH): nothing to compare")
        return 0
    import torch

    torch.manual_seed(0)
    mrd = import_mrd(args.mrd.expanduser().resolve())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        assets = write_assets(Path(tmp), args.subdivisions)
        for loss in args.losses:
            results[loss] = compare(mrd, assets, loss, args, Path(tmp))
            r = results[loss]
            print(f"{loss} loss: MRD {r['mrd_ms']} ms, lit3d {r['lit3d_ms']} ms a step "
                  f"(median of {r['steps_each']} each): speedup {r['speedup']}x "
                  f"(target >= {r['target']})")
    record = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    record["peer_mrd"] = {
        "settings": {"vertices": (10 * 4 ** args.subdivisions + 2), "size": args.size,
                     "spp": args.spp, "views": args.views, "integrator": "direct_projective",
                     "sppi": 0, "network": "efficientnet_lite0"},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
                   f"{torch.get_num_threads()}",
        **results}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    pixel = results.get("pixel", {}).get("speedup")
    latent = results.get("latent", {}).get("speedup")
    print(f"mrd_speedup={pixel} target>=1.5 latent_speedup={latent} target>=3")
    missed = any(r["speedup"] < r["target"] for r in results.values())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
