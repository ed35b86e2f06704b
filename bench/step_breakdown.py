"""Step-time breakdown of the 3D-MEI and MRD training steps, and targets P1 and P4.

Each configuration is built from its config file exactly as ``python -m lit3d fit`` builds it
(LightningCLI, ``run=False``), with network weights replaced by a random initialization. One
training step is cut into its stages, each timed on its own (the tensor between two stages is
detached, so every backward pass is timed separately too):

    deform (RBF field / Large Steps solve), regularizers, render, network forward,
    network backward, render backward, regularizers backward, deform backward, optimizer

The stages' sum is checked against the time of an uncut step (``loss.backward()`` + Adam) of the
same module. Medians over ``--repeats`` steps after ``--warmup`` steps (which record the JIT
kernels). On CPU, and on CUDA when present.

P1: ``overhead = (render + deform + regularizers, forward and backward) / (network
forward + backward)`` of the 3D-MEI V4 configuration (``configs/mei3d_v4.yaml``: the paper's
ResNet50-layer3 model and its 100 x 100 input), target <= 0.25. The last line prints it per
device, ``P1 overhead cpu=<ratio> [cuda=<ratio>] target<=0.25``; the exit status is 1 when it
is missed on every device measured. P4 (``--configs mei3d_p4``, not in the default list): the
whole simple-cell step at 128 x 128 with 8 views a step, target <= 20 ms. Figures go into
``bench/results.json`` under ``step_breakdown`` (per device; a run updates only the devices and
configurations it measured).

    python bench/step_breakdown.py [--repeats 20] [--warmup 5] [--configs mei3d_v4 ...]
        [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

RESULTS = Path(__file__).with_name("results.json")
P1_TARGET = 0.25
P1_CONFIG = "mei3d_v4"

#: Per configuration: the overrides that make it run offline (random weights) and, for MRD,
#: use the network in the loss (the metamer run).
CONFIGS = {
    "mei3d_simple_cell": [],
    "mei3d_v4": ["--model.init_args.response_model.init_args.weights", "null"],
    "mrd_demo": ["--model.init_args.loss", "latent",
                 "--model.init_args.model.init_args.weights", "null"],
    # P4: the simple-cell step at 128 x 128 with 8 views a step.
    "mei3d_p4": ["--model.init_args.renderer.init_args.image_size", "128",
                 "--model.init_args.response_model.init_args.input_size", "128",
                 "--data.init_args.num_views", "8", "--data.init_args.batch_size", "8"],
}
P4_CONFIG, P4_TARGET_S = "mei3d_p4", 0.020
#: Configurations that are another config's file with their overrides.
BASE_CONFIG = {P4_CONFIG: "mei3d_simple_cell"}
OVERHEAD = ("deform", "deform backward", "regularizers", "regularizers backward", "render",
            "render backward")
NETWORK = ("network", "network backward")


def build(name: str, overrides: list[str] | None = None):
    """(module, one training batch) of ``configs/<name>.yaml`` with ``overrides`` (default:
    :data:`CONFIGS`' offline overrides of that config)."""
    from lit3d.cli import build as build_cli

    config = ROOT / "configs" / f"{BASE_CONFIG.get(name, name)}.yaml"
    extra = CONFIGS[name] if overrides is None else overrides
    cli = build_cli(["--config", str(config), "--trainer.logger", "false", *extra])
    datamodule = cli.datamodule
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    return cli.model, batch


class Clock:
    """Accumulates wall times of named stages (synchronizing CUDA and Dr.Jit around each)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: dict[str, list[float]] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def __call__(self, name: str):
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self.times.setdefault(name, []).append(time.perf_counter() - start)

    def medians(self, skip: int) -> dict[str, float]:
        return {k: statistics.median(v[skip:]) for k, v in self.times.items()}


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().requires_grad_(True)


def mei3d_stages(module, views, optimizer, clock: Clock, step: int) -> None:
    """One MEI3D step cut into stages (same arithmetic as ``MEI3D.objective``)."""
    seed = module.step_seed(step)
    with clock("deform"):
        vertices = module.vertices()
    at_render, at_regs = _leaf(vertices), _leaf(vertices)
    with clock("regularizers"):
        regs = module.regularizers(at_regs)
        penalty = sum(getattr(module.hparams, f"lambda_{k}") * regs[k] for k in regs)
    with clock("render"):
        images = module.renderer(at_render, module.faces, views, seed=seed)
    pixels = _leaf(images)
    with clock("network"):
        response = module.response_model(pixels)[:, module.hparams.neuron].mean()
    with clock("network backward"):
        (grad_images,) = torch.autograd.grad(-response, pixels)
    with clock("render backward"):
        (grad_render,) = torch.autograd.grad(images, at_render, grad_images)
    with clock("regularizers backward"):
        (grad_regs,) = torch.autograd.grad(penalty, at_regs)
    with clock("deform backward"):
        vertices.backward(grad_render + grad_regs)
    with clock("optimizer"):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def mei3d_step(module, views, optimizer, clock: Clock, step: int) -> None:
    with clock("step"):
        loss, _, _ = module.objective(views, seed=module.step_seed(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def mrd_setup(module, batch):
    """Target latents of the batch's views (what ``MRDShape.prepare_targets`` makes)."""
    from lit3d.losses import latents_of
    from lit3d.modules.mrd_base import TARGET_SEED

    index, views = batch
    with torch.no_grad():
        targets = module.render(module.target_vertices, module.target_faces, views,
                                seed=TARGET_SEED, spp=module.hparams.target_spp)
        return index, views, latents_of(module.model, targets)


def mrd_stages(module, data, optimizer, clock: Clock, step: int) -> None:
    from lit3d.losses import latent_loss

    index, views, target_latents = data
    seeds = [s + step for s in module.step_seeds(index)]
    with clock("deform"):
        vertices = module.vertices()  # Large Steps: solve (I + λL) x = u
    at_render = _leaf(vertices)
    with clock("render"):
        images = module.render(at_render, module.faces, views, seed=seeds)
    pixels = _leaf(images)
    with clock("network"):
        loss = latent_loss(module.model, pixels, target_latents)
    with clock("network backward"):
        (grad_images,) = torch.autograd.grad(loss, pixels)
    with clock("render backward"):
        (grad_render,) = torch.autograd.grad(images, at_render, grad_images)
    with clock("deform backward"):
        vertices.backward(grad_render)
    with clock("optimizer"):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def mrd_step(module, data, optimizer, clock: Clock, step: int) -> None:
    from lit3d.losses import latent_loss

    index, views, target_latents = data
    seeds = [s + step for s in module.step_seeds(index)]
    with clock("step"):
        images = module.render(module.vertices(), module.faces, views, seed=seeds)
        latent_loss(module.model, images, target_latents).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def measure(name: str, device: torch.device, repeats: int, warmup: int) -> dict[str, float]:
    module, batch = build(name)
    module = module.to(device)
    if name.startswith("mrd"):
        from lit3d.data.views import Views

        index, views = batch
        batch = (index.to(device), views.to(device) if isinstance(views, Views) else views)
        data = mrd_setup(module, batch)
        optimizer = module.configure_optimizers()
        stages, step = mrd_stages, mrd_step
    else:
        data = batch.to(device)
        optimizer = torch.optim.Adam(module.param_groups())
        stages, step = mei3d_stages, mei3d_step
    cut, whole = Clock(device), Clock(device)
    for i in range(warmup + repeats):
        stages(module, data, optimizer, cut, i)
        step(module, data, optimizer, whole, i)
    times = cut.medians(warmup)
    times["sum of stages"] = sum(times.values())
    times["step"] = whole.medians(warmup)["step"]
    overhead = sum(times.get(k, 0.0) for k in OVERHEAD)
    network = sum(times[k] for k in NETWORK)
    times["overhead / network"] = overhead / network
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                        default=[c for c in CONFIGS if c != P4_CONFIG])
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"],
                        help="default: the CPU, and CUDA when present")
    args = parser.parse_args()
    import lit3d  # noqa: F401  (torchvision shim before lightning)

    wanted = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(d) for d in wanted]
    print(f"{platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, devices {wanted}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for device in devices:
        if device.type == "cuda" and "cpu" in wanted:
            # One Mitsuba variant per process: the CUDA figures come from a fresh process.
            results[device.type] = _child(device, args)
            continue
        for name in args.configs:
            times = measure(name, device, args.repeats, args.warmup)
            results.setdefault(device.type, {})[name] = times
    for device_type, per_config in results.items():
        for name, times in per_config.items():
            for stage, seconds in times.items():
                value = f"{seconds:.3f}" if stage == "overhead / network" else \
                    f"{seconds * 1000:.1f} ms"
                print(f"{device_type} {name}: {stage} {value}")
    all_results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record = all_results.get("step_breakdown", {})
    for device_type, per_config in results.items():
        record[device_type] = {**record.get(device_type, {}),
                               **{name: {k: round(v, 5) for k, v in times.items()}
                                  for name, times in per_config.items()}}
    all_results["step_breakdown"] = record
    missed = False
    p1 = {d: r[P1_CONFIG]["overhead / network"] for d, r in results.items() if P1_CONFIG in r}
    if p1:
        all_results["P1_overhead"] = {**all_results.get("P1_overhead", {}), "config": P1_CONFIG,
                                      **{d: round(v, 4) for d, v in p1.items()},
                                      "target": P1_TARGET}
        print("P1 overhead " + " ".join(f"{d}={v:.3f}" for d, v in p1.items())
              + f" target<={P1_TARGET}")
        missed |= min(p1.values()) > P1_TARGET
    p4 = {d: r[P4_CONFIG]["step"] for d, r in results.items() if P4_CONFIG in r}
    if p4:
        all_results["P4_step_s"] = {**all_results.get("P4_step_s", {}),
                                    **{d: round(v, 5) for d, v in p4.items()},
                                    "target": P4_TARGET_S}
        print("P4 step " + " ".join(f"{d}={v * 1000:.1f}ms" for d, v in p4.items())
              + f" target<={P4_TARGET_S * 1000:.0f}ms")
        missed |= min(p4.values()) > P4_TARGET_S
    RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
    return 1 if missed else 0


def _child(device: torch.device, args) -> dict[str, dict[str, float]]:
    import subprocess

    code = ("import json, sys, torch; sys.path.insert(0, %r); import bench.step_breakdown as b; "
            "print(json.dumps({n: b.measure(n, torch.device('cuda'), %d, %d) for n in %r}))"
            % (str(ROOT), args.repeats, args.warmup, args.configs))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
