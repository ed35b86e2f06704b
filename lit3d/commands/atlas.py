"""``lit3d atlas``: a static, browsable atlas of fitted stimuli (:mod:`lit3d.viewer.atlas`):
one card per 3D-MEI unit or MRD run, sortable by response, filterable by text; open
``index.html`` from disk (no server, no network).

    python -m lit3d atlas runs/mei3d_population/version_0 runs/mei3d_simple_cell/version_* \\
        --out atlas/
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit3d atlas", description="A static HTML atlas of "
                                     "fitted stimuli (lit3d.viewer.atlas).")
    parser.add_argument("runs", nargs="+", help="run directories (runs/<name>/version_<n>)")
    parser.add_argument("--out", default="atlas", help="output folder (default: atlas)")
    return parser


def run(argv: list[str] | None = None) -> Path:
    """``lit3d atlas``: writes the atlas; returns its ``index.html``."""
    from lit3d.runs import Run
    from lit3d.viewer.atlas import build_atlas

    args = parser().parse_args(argv)
    for path in args.runs:
        Run.open(path)  # every directory is checked before any work
    index = build_atlas(args.runs, args.out)
    print(f"atlas written to {index} (open it in a browser)", flush=True)
    return index
