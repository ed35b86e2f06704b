"""``lit3d pixel-mei``: the pixel-space MEI of a fitted 3D-MEI's unit, compared with the 3D
stimulus (:mod:`lit3d.analysis.pixel_mei`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lit3d.commands.fitted import fitted_parser, load_fitted
from lit3d.errors import InputError


def parser() -> argparse.ArgumentParser:
    parser = fitted_parser("pixel-mei", "Pixel-space MEI of the config's unit and its "
                            "comparison with the 3D-MEI (lit3d.analysis.pixel_mei).", "pixel_mei")
    parser.add_argument("--steps", type=int, default=300, help="gradient-ascent steps")
    parser.add_argument("--lr", type=float, default=0.1, help="step, fraction of the norm")
    parser.add_argument("--blur_sigma", type=float, default=1.0,
                        help="gradient preconditioning blur, input pixels")
    parser.add_argument("--num_seeds", type=int, default=4,
                        help="renders averaged for the 3D-MEI's response")
    return parser


def run(argv: list[str] | None = None) -> dict[str, float]:
    """``lit3d pixel-mei``: the pixel MEI of the config's unit at the config model's fixed norm,
    the 3D stimulus's response (mean over ``num_seeds`` renders at ``eval_spp``), both
    normalized by the unit's optimum where known; writes ``pixel_mei.png`` (the model input),
    ``comparison.png`` (bar plot) and ``pixel_mei.json``."""
    from lit3d.analysis.pixel_mei import pixel_mei, plot_comparison, plot_inputs
    from lit3d.data.views import Views

    args = parser().parse_args(argv)
    if args.steps < 1 or args.lr <= 0 or args.num_seeds < 1:
        raise InputError("--steps and --num_seeds must be >= 1 and --lr > 0")
    module, vertices, faces, view, spp = load_fitted(args)
    model, neuron = module.response_model.eval(), int(module.hparams.neuron)
    normalizer = getattr(model, "normalizer", None)
    norm = float(getattr(normalizer, "norm", None) or 25.0)
    result = pixel_mei(model, neuron, steps=args.steps, lr=args.lr,
                       blur_sigma=args.blur_sigma, norm=norm, seed=args.seed)
    with torch.no_grad():
        renders = module.renderer(vertices, faces, Views.cat([view] * args.num_seeds),
                                  seed=args.seed, spp=spp)
        response_3d = float(model(renders)[:, neuron].mean())
    optimum = float(module.optimal_response)
    optimum = optimum if optimum == optimum else None  # NaN: unknown
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        seen = model.preprocess(renders[:1])[0]
        seen_response = float(model(renders[:1])[0, neuron])
    plot_inputs(out / "pixel_mei.png", {"pixel MEI": result.image[0], "3D-MEI render": seen},
                {"pixel MEI": result.response, "3D-MEI render": seen_response},
                title=f"Unit {neuron}: what the model sees (after its preprocessing)")
    plot_comparison(out / "comparison.png", {"3D-MEI": response_3d, "pixel MEI": result.response},
                    optimum, title=f"unit {neuron}")
    record = {"neuron": neuron, "norm": norm, "response_3d": response_3d,
              "response_pixel": result.response, "optimal_response": optimum,
              "normalized_3d": None if optimum is None else response_3d / optimum,
              "normalized_pixel": None if optimum is None else result.response / optimum}
    (out / "pixel_mei.json").write_text(json.dumps(record, indent=2) + "\n")
    headline = record["normalized_pixel"]
    print(f"3D-MEI response {response_3d:.4g}, pixel MEI {result.response:.4g}"
          + ("" if optimum is None else f" (optimum {optimum:.4g})"), flush=True)
    print(f"pixel_mei_normalized_response={headline:.3f}" if headline is not None
          else f"pixel_mei_response={result.response:.4g}", flush=True)
    return record
