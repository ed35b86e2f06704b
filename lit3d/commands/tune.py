"""``lit3d tune``: the pose and light tuning sweeps of a fitted 3D-MEI
(:mod:`lit3d.analysis.tuning`): ``pose.csv``, ``pose.png`` (heatmap), ``pose_contact.png``,
``light.csv``, ``light.png`` (polar heatmap) and ``light_contact.png`` in ``--out`` (default: the
run's ``tuning/``, ``tuning/neuron_<n>/`` for a unit of a population, where ``lit3d atlas``
finds them; ``tuning/`` without a run); prints each sweep's peak.

    python -m lit3d tune --run runs/mei3d_simple_cell/version_0 --out tuning/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lit3d.commands.fitted import fitted_parser, open_fitted, parse_grid


def parser() -> argparse.ArgumentParser:
    parser = fitted_parser("tune", "Pose and light tuning sweeps of a fitted 3D-MEI "
                            "(lit3d.analysis.tuning).", "tuning")
    parser.add_argument("--azimuths", default="-90:91:15", help="pose azimuths (deg)")
    parser.add_argument("--elevations", default="-60:61:15", help="pose elevations (deg)")
    parser.add_argument("--light_azimuths", default="0:360:30", help="light azimuths (deg)")
    parser.add_argument("--light_elevations", default="10:91:20",
                        help="light elevations above the camera's image plane (deg)")
    parser.add_argument("--chunk", type=int, default=16, help="views per renderer call")
    parser.set_defaults(out=None)  # a run's own tuning/ folder (lit3d atlas shows it), else tuning
    return parser


def run(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    """``lit3d tune``: runs both sweeps; returns ``{"pose": peak, "light": peak}``
    (azimuth, elevation, response)."""
    from lit3d.analysis.tuning import check_light_elevations, light_sweep, pose_sweep
    from lit3d.modules import MEI3DPopulation

    args = parser().parse_args(argv)
    grids = {name: parse_grid(getattr(args, name)) for name in
             ("azimuths", "elevations", "light_azimuths", "light_elevations")}
    check_light_elevations(grids["light_elevations"])  # before the (slow) model is built
    fitted = open_fitted(args)
    module, vertices, faces = fitted.stimulus(args.unit)
    view, spp = fitted.view, fitted.spp
    neuron = int(module.hparams.neuron)
    model = module.response_model.eval()

    def response(images):
        return model(images)[:, neuron]

    if args.out is not None:
        out = Path(args.out)
    elif args.run:
        out = Path(args.run) / "tuning"
        if isinstance(fitted.whole, MEI3DPopulation):
            out = out / f"neuron_{int(module.hparams.neuron)}"
    else:
        out = Path("tuning")
    out.mkdir(parents=True, exist_ok=True)
    peaks = {}
    for kind, sweep_fn, az, el in (
            ("pose", pose_sweep, grids["azimuths"], grids["elevations"]),
            ("light", light_sweep, grids["light_azimuths"], grids["light_elevations"])):
        sweep = sweep_fn(module.renderer, response, vertices, faces, view, az, el,
                         seed=args.seed, spp=spp, chunk=args.chunk)
        sweep.write_csv(out / f"{kind}.csv")
        sweep.plot(out / f"{kind}.png")
        sweep.contact_sheet(out / f"{kind}_contact.png")
        peaks[kind] = sweep.peak()
        a, e, r = peaks[kind]
        print(f"{kind}: peak response {r:.4g} at azimuth {a:g}, elevation {e:g}", flush=True)
    print(f"tuning written to {out}", flush=True)
    return peaks
