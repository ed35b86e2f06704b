"""``lit3d export``: a fitted stimulus as a folder of meshes, renders and a JSON sidecar
(:mod:`lit3d.analysis.export`); a mesh that passes through itself is refused unless asked.

    python -m lit3d export --run runs/mei3d_simple_cell/version_0 --out stimulus/ \\
        --image_size 512 --poses "0,0;30,0" --lights "45,75;135,45"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lit3d.commands.fitted import fitted_parser, load_fitted, parse_pairs
from lit3d.errors import InputError


def parser() -> argparse.ArgumentParser:
    parser = fitted_parser("export", "Export a fitted stimulus: meshes, renders, JSON sidecar "
                            "(lit3d.analysis.export).", "stimulus")
    parser.add_argument("--image_size", type=int, default=None,
                        help="render resolution (default: the config's)")
    parser.add_argument("--allow-self-intersections", action="store_true",
                        help="export a mesh that passes through itself (refused otherwise: "
                        "it is not a physical object)")
    parser.add_argument("--poses", default="0,0", help="object poses 'az,el;az,el' (deg)")
    parser.add_argument("--lights", default=None, help="light directions 'az,el;az,el' on the "
                        "camera's forward hemisphere (deg; default: the config's light)")
    return parser


def run(argv: list[str] | None = None) -> Path:
    """``lit3d export``: writes the stimulus folder; returns the sidecar's path."""
    from lit3d.analysis.export import export_unit
    from lit3d.analysis.tuning import check_light_elevations

    args = parser().parse_args(argv)
    poses = parse_pairs(args.poses, "--poses")
    lights = None if args.lights is None else parse_pairs(args.lights, "--lights")
    if lights:
        check_light_elevations([e for _, e in lights])
    module, vertices, faces, view, spp = load_fitted(args)
    if args.image_size is not None and args.image_size < 1:
        raise InputError(f"--image_size must be >= 1, got {args.image_size}")
    source = {"config": str(Path(args.run) / "config.yaml") if args.run else args.config,
              "run": args.run}
    path = export_unit(args.out, module, vertices, faces, view, poses, lights, spp=spp,
                       seed=args.seed, source=source, image_size=args.image_size,
                       allow_self_intersections=args.allow_self_intersections)
    print(f"stimulus written to {path.parent} ({path.name})", flush=True)
    return path
