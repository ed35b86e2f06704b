"""The metamer report (MRD paper, Table 4 and Fig. 6) of a shape reconstruction.

Inputs: a pixel-baseline run and latent-reconstruction runs over several seeds (their log dirs,
each with ``summary.json``), and a null distribution: the similarity between the target's renders
and renders of random, unrelated procedural meshes (:func:`random_meshes`), measured by the same
network in the same views.

Distributions (one value per view):

- **null**: for each random mesh, its per-view similarity to the target (N_meshes × views);
- **seeds**: each seed run's per-view similarity at its peak epoch (``per_view_similarity``);
- **baseline**: the baseline run's per-view similarity at its peak epoch.

ECDF differences: ``ecdf_difference(a, b) = ∫₋₁¹ (F_b(x) − F_a(x)) dx``, the signed area between
the two empirical CDFs over the similarity range [-1, 1] (positive when ``a`` lies to the right
of ``b``; for distributions inside [-1, 1] it equals ``mean(a) − mean(b)``), and the
Kolmogorov–Smirnov statistic ``max |F_a − F_b|``. The table has MRD Table 4's columns per seed:
epoch, top similarity, top baseline, RSA τ and p, significant (p < alpha), similarity difference
(top − baseline), seed–null and seed–baseline ECDF differences, and the metamer verdict.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from lit3d.console import progress
from lit3d.errors import InputError
from lit3d.geometry.mesh import Mesh


def random_meshes(count: int, seed: int = 0, subdivisions: int = 3) -> list[Mesh]:
    """``count`` random procedural closed meshes, unrelated to any target: stars with random
    lobes, rounded boxes and capsules, each stretched by a random factor in [0.25, 1] along
    each axis (rods, slabs, blobs), randomly rotated, scaled to a random size (bounding radius
    0.5–1.3 world units) and shifted by up to 0.4 along each axis."""
    from lit3d.geometry.procedural import Capsule, RoundedBox, StarShape

    rng = np.random.default_rng(seed)
    meshes = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            source = StarShape(lobes=int(rng.integers(2, 10)),
                               amplitude=float(rng.uniform(0.1, 0.8)),
                               sharpness=float(rng.uniform(2, 16)),
                               radius=float(rng.uniform(0.5, 0.9)), subdivisions=subdivisions,
                               seed=int(rng.integers(1, 2**31)))
        elif kind == 1:
            half = tuple(float(x) for x in rng.uniform(0.3, 0.9, 3))
            source = RoundedBox(half_size=half, rounding=float(rng.uniform(0.02, min(half) * 0.8)),
                                subdivisions=subdivisions)
        else:
            source = Capsule(radius=float(rng.uniform(0.25, 0.6)),
                             half_length=float(rng.uniform(0.1, 0.8)), subdivisions=subdivisions)
        mesh = source.build()
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        stretch = torch.as_tensor(rng.uniform(0.25, 1.0, 3), dtype=torch.float32)
        vertices = (mesh.vertices * stretch) @ torch.as_tensor(q, dtype=torch.float32).T
        vertices = vertices * (float(rng.uniform(0.5, 1.3)) / vertices.norm(dim=-1).max())
        vertices = vertices + torch.as_tensor(rng.uniform(-0.4, 0.4, 3), dtype=torch.float32)
        meshes.append(Mesh(vertices, mesh.faces))
    return meshes


@torch.no_grad()
def null_similarities(model, renderer, target: Mesh, views, meshes: Sequence[Mesh],
                      spp: int = 16, seed: int = 0) -> Tensor:
    """(N_meshes, views) hypersphere similarity of each mesh's renders to the target's in the
    same views (the network sees ``sRGB(Reinhard(render))``)."""
    from lit3d.losses import latents_of
    from lit3d.metrics.similarity import hypersphere_similarity

    target_latents = latents_of(model, renderer(target.vertices, target.faces, views, seed=seed,
                                                spp=spp))
    rows = []
    for i, mesh in enumerate(progress(meshes, "null meshes")):
        images = renderer(mesh.vertices, mesh.faces, views, seed=seed + 1 + i, spp=spp)
        rows.append(hypersphere_similarity(latents_of(model, images), target_latents))
    return torch.stack(rows).float()


def ecdf(values: Sequence[float], grid: np.ndarray) -> np.ndarray:
    """Empirical CDF of ``values`` at the points of ``grid``."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    return np.searchsorted(values, grid, side="right") / len(values)


def ecdf_difference(a: Sequence[float], b: Sequence[float], points: int = 4001
                    ) -> dict[str, float]:
    """``{"area": ∫₋₁¹ (F_b − F_a) dx, "ks": max |F_a − F_b|}`` (module docstring)."""
    if len(a) == 0 or len(b) == 0:
        return {"area": math.nan, "ks": math.nan}
    grid = np.linspace(-1.0, 1.0, points)
    fa, fb = ecdf(a, grid), ecdf(b, grid)
    area = float(np.sum((fb - fa)[:-1] * np.diff(grid)))
    return {"area": area, "ks": float(np.abs(fa - fb).max())}


def read_run(path: str | Path) -> dict[str, Any]:
    """A run's ``summary.json`` (a log dir or the file)."""
    path = Path(path)
    path = path / "summary.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"run summary not found: {path}")
    summary = json.loads(path.read_text())
    if summary.get("per_view_similarity") is None:
        raise InputError(f"{path} has no per-view similarity (was the run given a model?)")
    summary["path"] = str(path.parent)
    return summary


def metamer_table(baseline: dict[str, Any], seeds: Sequence[dict[str, Any]],
                  null: Sequence[float], alpha: float = 0.05) -> list[dict[str, Any]]:
    """One row per seed run with MRD Table 4's columns (module docstring)."""
    base_values = baseline["per_view_similarity"]
    top_base = float(baseline["top_similarity"])
    rows = []
    for run in seeds:
        values = run["per_view_similarity"]
        p = run.get("rsa_p")
        rows.append({
            "run": "/".join(Path(run["path"]).parts[-2:]) if run.get("path") else "",
            "epoch": run.get("epoch"),
            "top_similarity": float(run["top_similarity"]),
            "top_baseline": top_base,
            "rsa_tau": run.get("rsa_tau"),
            "rsa_p": p,
            "significant": None if p is None else bool(p < alpha),
            "similarity_difference": float(run["top_similarity"]) - top_base,
            "seed_null_ecdf": ecdf_difference(values, null)["area"],
            "seed_base_ecdf": ecdf_difference(values, base_values)["area"],
            "metamer": float(run["top_similarity"]) >= top_base,
        })
    return rows


def _summary(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"run summary not found: {file}")
    return {**json.loads(file.read_text()), "path": str(file.parent)}


def network_table(groups: Sequence[Sequence[str | Path]], alpha: float = 0.05
                  ) -> list[dict[str, Any]]:
    """MRD Tables 3/4 over networks: for each group ``(baseline, run, ...)`` (one pixel
    baseline per target, scored by several networks through ``similarity_models``, and latent
    runs of any of those networks), one row per latent run - its top similarity and RSA
    against the baseline's bar for the run's network - and one row (no run) for each scored
    network without a run."""
    rows = []
    for group in groups:
        if len(group) < 1:
            raise InputError("each --networks group starts with a baseline run")
        baseline = _summary(group[0])
        bars = dict(baseline.get("networks") or {})
        if baseline.get("network") and baseline["network"] not in bars:
            bars[baseline["network"]] = {k: baseline.get(k) for k in
                                         ("epoch", "top_similarity", "rsa_tau", "rsa_p")}
        if not bars:
            raise InputError(f"baseline {group[0]} scored no network (give it a model or "
                             "similarity_models)")
        target = "/".join(Path(baseline["path"]).parts[-2:])
        runs = [_summary(p) for p in group[1:]]
        for network, bar in sorted(bars.items()):
            mine = [r for r in runs if r.get("network") == network]
            top_base = bar.get("top_similarity")
            for run in mine or [None]:
                top = None if run is None else run.get("top_similarity")
                p = None if run is None else run.get("rsa_p")
                rows.append({
                    "target": target, "network": network,
                    "run": "" if run is None else "/".join(Path(run["path"]).parts[-2:]),
                    "top_baseline": top_base, "top_similarity": top,
                    "epoch": None if run is None else run.get("epoch"),
                    "rsa_tau": None if run is None else run.get("rsa_tau"), "rsa_p": p,
                    "significant": None if p is None else bool(p < alpha),
                    "metamer": (None if top is None or top_base is None
                                else bool(top >= top_base)),
                })
        unmatched = [r["path"] for r in runs if r.get("network") not in bars]
        if unmatched:
            raise InputError(f"{unmatched[0]}: its network was not scored by the baseline "
                             f"{group[0]} (scored: {sorted(bars)})")
    return rows


def write_table(rows: list[dict[str, Any]], out: Path, name: str = "metamer_table"
                ) -> tuple[Path, Path]:
    """``<name>.csv`` and ``<name>.md``."""
    csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
    columns = list(rows[0]) if rows else []
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    def fmt(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def plot_ecdfs(path: Path, distributions: dict[str, Sequence[float]]) -> Path:
    """ECDF plot (Fig. 6) of the named distributions over similarity in [-1, 1]."""
    from lit3d.figures import pyplot, save_figure

    plt = pyplot()
    colors = {"null": "tab:orange", "seeds": "tab:cyan", "baseline": "tab:purple"}
    grid = np.linspace(-1.0, 1.0, 2001)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in distributions.items():
        ax.step(grid, ecdf(values, grid), where="post", label=f"{name} (n={len(values)})",
                color=colors.get(name))
    ax.set_xlabel("hypersphere similarity to the target")
    ax.set_ylabel("ECDF")
    ax.set_xlim(-1, 1)
    ax.set_title("Per-view similarity: null, latent seeds and pixel baseline")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)
