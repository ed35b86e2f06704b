"""``lit3d gradcheck``: the renderer's vertex gradient of a config's loss against central finite
differences (:mod:`lit3d.analysis.gradcheck`), for silhouette and interior vertices apart.

    python -m lit3d gradcheck --config configs/mrd_demo.yaml
    python -m lit3d gradcheck --run runs/mrd_demo/version_0 --views 2
    python -m lit3d gradcheck --config configs/mrd_demo.yaml -- \\
        --model.init_args.renderer.init_args.integrator prb     # fails on silhouettes

Prints the cosine and relative error of each group, then ``gradcheck=pass|fail
min_cosine=<c> max_relative_error=<e>``; exits 1 when a group's cosine is below
``--min_cosine`` (the gradient points elsewhere) or its relative error above
``--max_relative_error`` (a term missing: without its silhouette term ``prb`` reaches cosine 0.99
on the MRD demo's silhouettes but relative error 0.64-0.73 where ``direct_projective`` has
0.07-0.13; docs/results.md).
"""

from __future__ import annotations

import argparse

from lit3d.errors import InputError


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit3d gradcheck", description=run.__doc__)
    parser.add_argument("--config", help="a 3D-MEI or MRD shape config (YAML; a population: "
                        "its first unit)")
    parser.add_argument("--run", help="a fit's run directory: its config and final mesh")
    parser.add_argument("--views", type=int, default=2,
                        help="the first N views of the config's data (default 2)")
    parser.add_argument("--directions", type=int, default=6,
                        help="random smooth displacement fields per group (default 6)")
    parser.add_argument("--eps", type=float, default=None,
                        help="largest vertex displacement of the differences, world units "
                        "(default: half a pixel's width at the first view's target)")
    parser.add_argument("--spp", type=int, default=64, help="samples per pixel (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="render seed")
    parser.add_argument("--min_cosine", type=float, default=0.9,
                        help="the least cosine a group must reach (default 0.9)")
    parser.add_argument("--max_relative_error", type=float, default=0.5,
                        help="the largest relative error a group may have (default 0.5)")
    parser.add_argument("overrides", nargs="*",
                        help="config overrides as for fit, after `--`")
    return parser


def run(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``lit3d gradcheck``: compares the renderer's gradient of the configured loss (3D-MEI:
    minus the response; MRD: the pixel or latent loss) with central differences along smooth
    random normal displacements; returns ``{group: {"cosine", "relative_error", "count"}}``."""
    from lit3d.analysis.gradcheck import gradient_check
    from lit3d.commands import open_analysed
    from lit3d.data.views import Views, overhead_views
    from lit3d.geometry.io import load_mesh
    from lit3d.metrics.plausibility import view_width
    from lit3d.modules import MEI3DPopulation
    from lit3d.modules.protocols import Remeshable, VertexObjective

    args = parser().parse_args(argv)
    if args.views < 1 or args.directions < 1 or args.spp < 1 or (
            args.eps is not None and not args.eps > 0):
        raise InputError("--views, --directions and --spp must be >= 1 and --eps > 0")
    home, cli = open_analysed(args.run, args.config, args.overrides)
    module = cli.model
    if isinstance(module, MEI3DPopulation):
        module = module.units[0]
    if not isinstance(module, VertexObjective):
        raise InputError(f"{type(module).__name__} has no loss of mesh vertices to check; "
                         "gradcheck takes a 3D-MEI or MRD shape config")
    mesh = module.current_mesh()
    vertices, faces = mesh.vertices, mesh.faces
    final = home.meshes().get("mesh") if home else None
    if final is not None:
        vertices, faces = load_mesh(final)
        if isinstance(module, Remeshable):
            module.set_mesh(vertices.float(), faces.long())
        elif tuple(faces.shape) != tuple(mesh.faces.shape):
            raise InputError(f"{final} does not have the config's mesh topology")
    views = getattr(cli.datamodule, "views", None)
    views = (views if isinstance(views, Views) else overhead_views())[:args.views]
    eps = args.eps or 0.5 * view_width(views) / module.renderer.image_size
    results = gradient_check(module.vertex_objective(views), vertices.float(), faces.long(),
                             views, directions=args.directions, eps=eps, spp=args.spp,
                             seed=args.seed)
    if not results:
        raise InputError("no vertex of the mesh is in view of the chosen views")
    for name, check in results.items():
        print(f"{name}: {check.count} vertices, cosine {check.cosine:.3f}, relative error "
              f"{check.relative_error:.3f}", flush=True)
    lowest = min(check.cosine for check in results.values())
    largest = max(check.relative_error for check in results.values())
    passed = lowest >= args.min_cosine and largest <= args.max_relative_error
    print(f"gradcheck={'pass' if passed else 'fail'} min_cosine={lowest:.3f} "
          f"max_relative_error={largest:.3f}", flush=True)
    if not passed:
        raise SystemExit(1)
    return {name: {"cosine": c.cosine, "relative_error": c.relative_error, "count": c.count}
            for name, c in results.items()}
