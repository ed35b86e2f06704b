"""``lit3d explore``: a fitted stimulus, live in the browser (:mod:`lit3d.viewer`).

    python -m lit3d explore --run runs/mei3d_simple_cell/version_0     # then open the URL

A 3D-MEI run (or ``--config`` with ``--mesh``/``--ckpt_path``) opens the 3D-MEI explorer
(:mod:`lit3d.viewer.mei`); an MRD shape run the reconstruction explorer (:mod:`lit3d.viewer.mrd`).
The server listens on 127.0.0.1 (``--host 0.0.0.0`` shares it on the network) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import time

from lit3d.commands.fitted import check_sources, fitted_parser, parse_pairs
from lit3d.errors import InputError


def parser() -> argparse.ArgumentParser:
    parser = fitted_parser("explore", "Explore a fitted stimulus in the browser: pose, light, "
                           "samples and unit, with the response recomputed live.", "views")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                        "127.0.0.1, this machine only; 0.0.0.0 shares it on the network)")
    parser.add_argument("--light", default=None, help="starting light direction 'az,el' "
                        "(deg; default: the fit's light)")
    parser.set_defaults(out=None)
    return parser


def run(argv: list[str] | None = None, serve: bool = True):
    """``lit3d explore``: starts the explorer and, with ``serve``, serves until interrupted;
    returns the explorer."""
    from lit3d.analysis.tuning import check_light_elevations
    from lit3d.commands import open_analysed
    from lit3d.commands.fitted import open_fitted
    from lit3d.modules import MRDShape

    args = parser().parse_args(argv)
    light = None
    if args.light is not None:
        pairs = parse_pairs(args.light, "--light")
        if len(pairs) != 1:
            raise InputError(f"--light takes one direction 'az,el', got {args.light!r}")
        check_light_elevations([pairs[0][1]])
        light = pairs[0]
    check_sources(args)
    opened = open_analysed(args.run, args.config)
    if isinstance(opened[1].model, MRDShape):
        from lit3d.viewer.mrd import MRDExplorer

        if not args.run:
            raise InputError("an MRD reconstruction is explored from its run: --run DIR")
        explorer = MRDExplorer(*opened, host=args.host, port=args.port)
    else:
        from lit3d.viewer.mei import MEIExplorer

        fitted = open_fitted(args, opened)
        if args.unit is not None:
            fitted.module(int(args.unit))  # an unknown unit is bad input
        out = args.out or (str(fitted.run.path / "views") if fitted.run else "views")
        explorer = MEIExplorer(fitted, host=args.host, port=args.port, out=out, light=light)
        if args.unit is not None:
            explorer.unit_control.value = str(args.unit)
    print(f"lit3d explore: open http://{args.host}:{explorer.server.get_port()} "
          "(Ctrl-C stops)", flush=True)
    if not serve:
        return explorer
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        explorer.stop()
    return explorer
