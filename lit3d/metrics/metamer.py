"""MRD's metamer criterion (MRD paper, sec. 2.6).

A pixel-loss baseline run fixes the bar: the highest mean hypersphere similarity (over views,
under the chosen network) that its reconstructions reach. A latent-loss reconstruction is a
*metamer* of the target for that network if its own peak similarity reaches the bar.
:func:`metamer_summary` turns a run's per-epoch history into the ``summary.json`` fields.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_baseline(path: str | Path, network: str | None = None) -> dict[str, Any]:
    """Reads a baseline run's ``summary.json``; checks it was measured with ``network``.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the problem."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"baseline summary not found: {path} (run the pixel-loss "
                                "baseline first; it writes summary.json in its log dir)")
    try:
        baseline = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"baseline summary {path} is not valid JSON: {error}") from error
    scored = baseline.get("networks") or {}
    if network is not None and baseline.get("network") != network and network in scored:
        # scored by one of the baseline's similarity_models: its figures are the bar
        return {**baseline, **scored[network], "network": network}
    if baseline.get("top_similarity") is None:
        raise ValueError(f"baseline summary {path} has no top_similarity (was it run with a "
                         "model to measure similarity?)")
    if network is not None and baseline.get("network") not in (None, network):
        known = sorted({baseline["network"], *scored})
        raise ValueError(f"baseline {path} measured similarity with {known}, this run with "
                         f"{network!r}: the criterion needs the same network (add it to the "
                         "baseline's similarity_models)")
    return baseline


def metamer_summary(history: list[dict[str, Any]], baseline: dict[str, Any] | None = None,
                    network: str | None = None, loss: str | None = None) -> dict[str, Any]:
    """Summary of a reconstruction run.

    Args:
        history: one record per evaluated epoch: ``{"epoch", "similarity", "per_view"
            (list), "rsa_tau", "rsa_p"}``; epoch ``-1`` may hold the initial mesh.
        baseline: the pixel baseline's summary (:func:`read_baseline`), or ``None``.

    Returns:
        ``epoch`` (of peak similarity), ``top_similarity``, ``per_view_similarity`` (at that
        epoch), ``initial_similarity``, ``final_similarity``, ``top_baseline_similarity``,
        ``rsa_tau``, ``rsa_p`` (at that epoch), ``metamer`` (top >= baseline, ``None`` without
        a baseline), ``network``, ``loss``.
    """
    trained = [h for h in history if h["epoch"] >= 0 and h.get("similarity") is not None
               and math.isfinite(h["similarity"])]
    initial = [h for h in history if h["epoch"] < 0]
    summary: dict[str, Any] = {"network": network, "loss": loss}
    if not trained:
        summary.update(epoch=None, top_similarity=None, per_view_similarity=None,
                       final_similarity=None, rsa_tau=None, rsa_p=None)
    else:
        best = max(trained, key=lambda h: h["similarity"])
        summary.update(epoch=int(best["epoch"]), top_similarity=float(best["similarity"]),
                       per_view_similarity=best.get("per_view"),
                       final_similarity=float(trained[-1]["similarity"]),
                       rsa_tau=best.get("rsa_tau"), rsa_p=best.get("rsa_p"))
    summary["initial_similarity"] = (float(initial[0]["similarity"]) if initial
                                     and initial[0].get("similarity") is not None else None)
    top_base = None if baseline is None else float(baseline["top_similarity"])
    summary["top_baseline_similarity"] = top_base
    summary["metamer"] = (None if top_base is None or summary["top_similarity"] is None
                          else bool(summary["top_similarity"] >= top_base))
    return summary


#: The fields of each network in a summary's ``networks``.
NETWORK_FIELDS = ("epoch", "top_similarity", "final_similarity", "initial_similarity",
                  "rsa_tau", "rsa_p")


def network_summaries(history: list[dict[str, Any]], network: str | None, scorers: list[str],
                      loss: str | None = None) -> dict[str, dict[str, Any]]:
    """Each scored network's summary (:data:`NETWORK_FIELDS` of :func:`metamer_summary`):
    ``network`` (the run's own, from the records' top level) and every name in ``scorers``
    (from each record's ``networks``)."""
    out = {}
    if network is not None:
        own = metamer_summary(history, None, network, loss)
        out[network] = {k: own[k] for k in NETWORK_FIELDS}
    for name in scorers:
        records = [{"epoch": h["epoch"], **h["networks"][name]} for h in history
                   if name in h.get("networks", {})]
        summary = metamer_summary(records, None, name, loss)
        out[name] = {k: summary[k] for k in NETWORK_FIELDS}
    return out
