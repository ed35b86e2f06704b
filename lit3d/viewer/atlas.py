"""A static atlas of fitted stimuli: one card per unit (3D-MEI) or run (MRD), browsable from
disk with no server and no network (``lit3d atlas RUN_DIR... --out atlas/``).

:func:`run_cards` collects a run's cards and their files: for a 3D-MEI unit the image the
response model saw (after its preprocessing), the render, the object figure and turntable the
fit wrote, the tuning heatmaps when ``lit3d tune`` wrote them into the run (``tuning/``, or
``tuning/neuron_<n>/`` for a unit of a population), the response and normalized response, the
plausibility measures, and an ``export`` folder (``mesh.glb``, ``stimulus.json``) to link to.
:func:`write_atlas` writes ``index.html`` (cards as plain HTML, images loaded lazily) with
``atlas.css`` and ``atlas.js`` (sorting by response, filtering by text).
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from lit3d.console import progress
from lit3d.errors import InputError
from lit3d.runs import Run

STATIC = Path(__file__).with_name("static")
#: The measures a card lists, in order, when the run has them.
MEASURES = ("self_intersections", "area_ratio", "in_view_fraction", "extent_over_view",
            "num_vertices", "final_similarity", "rsa_tau", "rsa_p", "chamfer")


@dataclass
class Card:
    """One unit or run in the atlas. Paths are relative to the atlas folder.

    Attributes:
        title: shown on the card (and searched by the filter); run: the run directory.
        response, normalized: the unit's response and normalized response (``None`` if none).
        measures: name -> value, listed on the card.
        images: caption -> image file; links: caption -> file (mesh, sidecar).
    """

    title: str
    run: str
    response: float | None = None
    normalized: float | None = None
    measures: dict[str, float] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "card"


def _copy(source: Path, out: Path, folder: Path, name: str) -> str | None:
    """Copies ``source`` (if it exists) into ``out/folder/name``; returns the relative path."""
    if not source.is_file():
        return None
    (out / folder).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out / folder / name)
    return (folder / name).as_posix()


def run_cards(run: Run, out: Path, start: int = 0) -> list[Card]:
    """The cards of ``run`` (one per 3D-MEI unit, or one for an MRD run), their files written
    under ``out/cards/``; ``start`` numbers the card folders."""
    from lit3d.commands import open_analysed
    from lit3d.modules import MEI3D, MEI3DPopulation

    opened = open_analysed(str(run.path), None)
    name = f"{run.path.parent.name}/{run.path.name}"
    metrics = {}
    for file in ("metrics.json", "summary.json"):
        if (run.path / file).is_file():
            metrics.update(json.loads((run.path / file).read_text()))
    if not isinstance(opened[1].model, (MEI3D, MEI3DPopulation)):
        folder = Path("cards") / f"{start:04d}-{_slug(name)}"
        card = Card(title=f"{name} ({type(opened[1].model).__name__})", run=str(run.path),
                    measures={k: metrics[k] for k in MEASURES
                              if isinstance(metrics.get(k), (int, float))})
        for caption, file in (("render (reconstruction above target)", "render.png"),
                              ("curves", "curves.png")):
            copied = _copy(run.path / file, out, folder, file)
            if copied:
                card.images[caption] = copied
        mesh = run.meshes().get("mesh")
        if mesh is not None:
            from lit3d.geometry.io import load_mesh, save_mesh

            (out / folder).mkdir(parents=True, exist_ok=True)
            save_mesh(out / folder / "mesh.glb", *load_mesh(mesh))
            card.links["mesh (GLB)"] = (folder / "mesh.glb").as_posix()
        return [card]
    return _mei_cards(run, opened, metrics, name, out, start)


def _mei_cards(run: Run, opened, metrics: dict, name: str, out: Path, start: int
               ) -> list[Card]:
    from lit3d.analysis.export import export_unit
    from lit3d.analysis.probe import Look, input_picture, probe
    from lit3d.commands.fitted import open_fitted

    args = SimpleNamespace(run=str(run.path), config=None, mesh=None, ckpt_path=None, spp=None)
    fitted = open_fitted(args, opened)
    population = len(fitted.units) > 1 or "units" in metrics
    cards = []
    for k, unit in enumerate(progress(fitted.units, f"{name}: {len(fitted.units)} unit(s)")):
        module, vertices, faces = fitted.stimulus(unit)
        suffix = f"_neuron_{unit}" if population else ""
        folder = Path("cards") / f"{start + k:04d}-{_slug(name)}-unit-{unit}"
        (out / folder).mkdir(parents=True, exist_ok=True)
        sidecar = export_unit(out / folder / "stimulus", module, vertices, faces, fitted.view,
                              spp=fitted.spp, seed=0, source={"run": str(run.path)},
                              allow_self_intersections=True)
        entry = json.loads(sidecar.read_text())["renders"][0]
        look = probe(module, vertices, faces, fitted.view, Look(spp=fitted.spp, seed=0))
        from PIL import Image

        Image.fromarray(input_picture(look.model_input, 128)).save(out / folder / "input.png")
        unit_metrics = metrics["units"][k] if population and "units" in metrics else metrics
        card = Card(title=f"{name} unit {unit}", run=str(run.path),
                    response=entry.get("response"), normalized=entry.get("normalized_response"),
                    measures={m: unit_metrics[m] for m in MEASURES
                              if isinstance(unit_metrics.get(m), (int, float))})
        card.images["the model's input"] = (folder / "input.png").as_posix()
        card.images["render"] = (folder / "stimulus" / entry["file"]).as_posix()
        tuning = run.path / "tuning" / (f"neuron_{unit}" if population else "")
        for caption, source, target in (
                ("object", run.path / f"object{suffix}.png", "object.png"),
                ("turntable", run.path / f"turntable{suffix}.webp", "turntable.webp"),
                ("pose tuning", tuning / "pose.png", "pose.png"),
                ("light tuning", tuning / "light.png", "light.png")):
            copied = _copy(source, out, folder, target)
            if copied:
                card.images[caption] = copied
        card.links["mesh (GLB)"] = (folder / "stimulus" / "mesh.glb").as_posix()
        card.links["stimulus.json"] = (folder / "stimulus" / "stimulus.json").as_posix()
        cards.append(card)
    return cards


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4g}"


def card_html(card: Card, index: int) -> str:
    """One card as an ``<article>`` (attributes carry what sorting and filtering read)."""
    e = html.escape
    sort_value = card.normalized if card.normalized is not None else card.response
    figures = "".join(
        f'<figure><a href="{e(path)}"><img loading="lazy" src="{e(path)}" alt="{e(caption)}">'
        f"</a><figcaption>{e(caption)}</figcaption></figure>"
        for caption, path in card.images.items())
    measures = "".join(f"<dt>{e(k.replace('_', ' '))}</dt><dd>{_number(v)}</dd>"
                       for k, v in card.measures.items())
    links = " · ".join(f'<a href="{e(path)}">{e(caption)}</a>'
                       for caption, path in card.links.items())
    value = "" if sort_value is None else f"{sort_value:.9g}"
    return (f'<article class="card" data-index="{index}" data-response="{value}" '
            f'data-text="{e(card.title.lower())}">'
            f"<h2>{e(card.title)}</h2>"
            f'<p class="response">normalized response <b class="normalized">'
            f"{_number(card.normalized)}</b> · response {_number(card.response)}</p>"
            f'<div class="figures">{figures}</div><dl>{measures}</dl>'
            f'<p class="links">{links}</p></article>')


def write_atlas(cards: list[Card], out: str | Path, title: str = "lit3d atlas") -> Path:
    """Writes ``out/index.html`` (with ``atlas.css`` and ``atlas.js``) for ``cards``; returns
    its path. The page needs no server and loads nothing from the network."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("atlas.css", "atlas.js"):
        shutil.copyfile(STATIC / name, out / name)
    body = "\n".join(card_html(card, i) for i, card in enumerate(cards))
    page = (STATIC / "atlas.html").read_text()
    page = (page.replace("{{title}}", html.escape(title))
            .replace("{{count}}", str(len(cards))).replace("{{cards}}", body))
    path = out / "index.html"
    path.write_text(page)
    return path


def build_atlas(runs: list[str | Path], out: str | Path) -> Path:
    """Cards of every run in ``runs`` (:func:`run_cards`) written as an atlas into ``out``."""
    out = Path(out)
    opened = [Run.open(path) for path in runs]
    if not opened:
        raise InputError("give at least one run directory")
    cards: list[Card] = []
    for run in opened:
        cards += run_cards(run, out, start=len(cards))
    return write_atlas(cards, out)
