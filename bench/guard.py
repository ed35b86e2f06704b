"""The step guard's self-intersection test along a real fit: kept broad phase vs from scratch.

The 3D-MEI step guard tests the mesh for self-intersections after every optimizer step. This
bench records the meshes the guard sees during ``--steps`` steps of a shipped config (default
``mei3d_simple_cell``: a 4,608-face sheet), then times on that recorded sequence the test
from scratch (:func:`lit3d.geometry.intersections.self_intersecting_faces`, the broad phase
every call) against :class:`~lit3d.geometry.intersections.SelfIntersections` (broad phase
kept until a vertex moved half its margin; each pair's answer kept and tested again only when
one of its vertices changed), in alternating blocks of ``--block`` calls, each
way replaying the whole sequence in order; medians per call. Every answer of the two is
checked equal. ``speedup = from scratch / kept``.

The last line is ``guard_speedup=<x> target>=<t>``; exit status 1 when it is missed. Results go
into ``bench/results.json`` under ``guard``.

    python bench/guard.py [--config mei3d_simple_cell] [--steps 300] [--block 25]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

RESULTS = Path(__file__).with_name("results.json")
TARGET = 2.0


def record(config: str, steps: int, out: Path) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The vertex states the step guard tested during ``steps`` training steps, and the faces."""
    from lit3d.cli import build as build_cli
    from lit3d.geometry import feasibility

    states: list[torch.Tensor] = []
    original = feasibility.Admissible.violation

    def violation(self, vertices):
        states.append(vertices.detach().double().cpu().clone())
        return original(self, vertices)

    cli = build_cli(["--config", str(ROOT / "configs" / f"{config}.yaml"),
                     "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
                     "--trainer.enable_progress_bar", "false",
                     "--trainer.enable_model_summary", "false",
                     "--trainer.max_epochs", "100000", "--trainer.max_steps", str(steps),
                     "--trainer.limit_val_batches", "0", "--trainer.default_root_dir", str(out)])
    feasibility.Admissible.violation = violation
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        feasibility.Admissible.violation = original
    return states, cli.model.faces.detach().cpu().long()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mei3d_simple_cell")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--block", type=int, default=25)
    args = parser.parse_args()
    from lit3d.geometry.intersections import SelfIntersections, self_intersecting_faces

    with tempfile.TemporaryDirectory() as out:
        states, faces = record(args.config, args.steps, Path(out))
    print(f"{args.config}: {len(states)} guard calls recorded over {args.steps} steps, "
          f"{faces.shape[0]} faces")
    kept = SelfIntersections(faces)
    times: dict[str, list[float]] = {"scratch": [], "kept": []}
    answers: dict[str, list[torch.Tensor]] = {"scratch": [], "kept": []}
    ways = {"scratch": lambda v: self_intersecting_faces(v, faces), "kept": kept.involved}
    position = {"scratch": 0, "kept": 0}
    while min(position.values()) < len(states):
        for way, test in ways.items():
            start = position[way]
            for vertices in states[start:start + args.block]:
                begin = time.perf_counter()
                answers[way].append(test(vertices))
                times[way].append(time.perf_counter() - begin)
            position[way] = start + args.block
    mismatches = sum(not torch.equal(a, b) for a, b in zip(answers["scratch"], answers["kept"]))
    if mismatches:
        raise SystemExit(f"{mismatches} answers differ between the two tests")
    medians = {way: 1e3 * statistics.median(t) for way, t in times.items()}
    speedup = medians["scratch"] / medians["kept"]
    hits = sum(bool(a.any()) for a in answers["kept"])
    means = {way: 1e3 * statistics.mean(t) for way, t in times.items()}
    print(f"from scratch {medians['scratch']:.2f} ms, kept broad phase {medians['kept']:.2f} ms "
          f"per call, means {means['scratch']:.2f} and {means['kept']:.2f} ms "
          f"({kept.builds} broad phases in {len(states)} calls, "
          f"{kept.tested / len(states):.0f} of {kept.kept_pairs} kept pairs tested a call; "
          f"{hits} calls found an intersection; answers equal)")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["guard"] = {
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "config": args.config, "steps": args.steps, "calls": len(states),
        "faces": int(faces.shape[0]), "broad_phases": kept.builds,
        "scratch_ms": round(medians["scratch"], 3), "kept_ms": round(medians["kept"], 3),
        "scratch_mean_ms": round(means["scratch"], 3), "kept_mean_ms": round(means["kept"], 3),
        "pairs_tested_per_call": round(kept.tested / len(states)),
        "speedup": round(speedup, 3), "target": TARGET,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"guard_speedup={speedup:.2f} target>={TARGET}")
    return 0 if speedup >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
