"""``lit3d explore`` and ``lit3d atlas``: the live explorer answers as the Python API does, in a
real browser; the atlas opens from disk with every card and image, sorts, filters, and loads
200 cards quickly."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import field_value, free_port, slider_thumb, wait_for_field
from tests.test_cli import ROOT, TINY
from tests.test_runs import MRD, RESUMABLE

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
MEI = str(ROOT / "configs/mei3d_simple_cell.yaml")
POPULATION = str(ROOT / "configs/mei3d_population.yaml")
# Small object figures and turntables: the atlas copies what the fit wrote.
SMALL_ARTIFACTS = ["--trainer.callbacks+=callbacks.FitArtifacts",
                   "--trainer.callbacks.init_args.object_size", "48",
                   "--trainer.callbacks.init_args.turntable_size", "32",
                   "--trainer.callbacks.init_args.object_spp", "2"]
UNITS = 16


def lit3d(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "lit3d", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def screenshot(page, name: str, tmp_path: Path) -> None:
    """Into the test's tmp dir and, with ``LIT3D_SCREENSHOTS=DIR``, into DIR (README's); the
    page scrolled to its top, notifications closed."""
    page.evaluate("window.scrollTo(0, 0)")
    for button in page.locator(".mantine-Notification-closeButton").all():
        button.click()
    page.wait_for_timeout(300)
    page.screenshot(path=str(tmp_path / name))
    if os.environ.get("LIT3D_SCREENSHOTS"):
        folder = Path(os.environ["LIT3D_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, folder / name)


@pytest.fixture(scope="module")
def mei_run(tmp_path_factory) -> Path:
    """A 3-step simple-cell 3D-MEI on a 17x17 sheet (the config's renderer and cell); with
    ``LIT3D_EXPLORE_RUN`` that run instead (README's screenshot uses the default fit)."""
    if os.environ.get("LIT3D_EXPLORE_RUN"):
        return Path(os.environ["LIT3D_EXPLORE_RUN"])
    save_dir = tmp_path_factory.mktemp("mei")
    result = lit3d("fit", "--config", MEI, "--trainer.max_epochs", "1",
                   "--data.init_args.steps_per_epoch", "3", "--trainer.enable_progress_bar",
                   "false", "--model.init_args.mesh.init_args.resolution", "16",
                   *SMALL_ARTIFACTS, "--trainer.logger.init_args.save_dir", str(save_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir / "mei3d_simple_cell" / "version_0"


@pytest.fixture(scope="module")
def population_run(tmp_path_factory) -> Path:
    """A 2-step population run of 16 simple cells (orientations 0-168.75 degrees)."""
    save_dir = tmp_path_factory.mktemp("population")
    orientations = [11.25 * k for k in range(UNITS)]
    result = lit3d("fit", "--config", POPULATION, *TINY,
                   "--data.init_args.steps_per_epoch", "2",
                   "--model.init_args.mesh.init_args.resolution", "8",
                   "--model.init_args.response_model.init_args.orientation_deg",
                   json.dumps(orientations), "--model.init_args.neurons",
                   json.dumps(list(range(UNITS))), *SMALL_ARTIFACTS,
                   "--trainer.logger.init_args.save_dir", str(save_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir / "mei3d_population" / "version_0"


@pytest.fixture(scope="module")
def mrd_run(tmp_path_factory) -> Path:
    """The shrunk MRD demo with a remesh at epoch 3 (tests/test_runs.py)."""
    save_dir = tmp_path_factory.mktemp("mrd")
    result = lit3d("fit", "--config", MRD, *RESUMABLE,
                   "--trainer.logger.init_args.save_dir", str(save_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir / "mrd_demo" / "version_0"


def exported_response(run: Path, out: Path, light: str, unit: int | None = None,
                      spp: int = 64, seed: int = 0) -> float:
    """The response ``lit3d export`` records for the fitted pose and ``light`` 'az,el'."""
    from lit3d.commands import export

    argv = ["--run", str(run), "--out", str(out), "--lights", light, "--spp", str(spp),
            "--seed", str(seed), "--allow-self-intersections"]
    path = export.run(argv + ([] if unit is None else ["--unit", str(unit)]))
    return json.loads(path.read_text())["renders"][0]["response"]


# -- the explorer ------------------------------------------------------------------------------
def test_explorer_in_the_browser_follows_the_light_and_saves_the_view(browser, mei_run,
                                                                      tmp_path):
    port = free_port()
    views = tmp_path / "views"
    server = subprocess.Popen(
        [sys.executable, "-m", "lit3d", "explore", "--run", str(mei_run), "--port", str(port),
         "--out", str(views)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, server.stderr.read()[-2000:]
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"http://127.0.0.1:{port}")
        wait_for_field(page, "shown", "the fit's light, spp 64, seed 0")
        before = float(field_value(page, "response"))
        assert field_value(page, "light azimuth") == "45"
        thumb = slider_thumb(page, "light azimuth")
        thumb.focus()
        for _ in range(30):  # 45 -> 75 degrees, one key press (and update request) each
            thumb.press("ArrowRight")
        wait_for_field(page, "shown", "light az 75 el 75, spp 64, seed 0")
        shown = float(field_value(page, "response"))
        assert shown != before
        expected = exported_response(mei_run, tmp_path / "reference", "75,75")
        assert abs(shown - expected) <= 1e-3 * max(1.0, abs(expected))
        page.get_by_role("button", name="Save view").click()
        wait_for_field(page, "saved", "stimulus.json")
        saved = json.loads((views / "view_000" / "stimulus.json").read_text())
        entry = saved["renders"][0]
        assert entry["light_deg"] == {"azimuth": 75.0, "elevation": 75.0}
        assert entry["spp"] == 64 and entry["seed"] == 0
        assert abs(entry["response"] - shown) <= 1e-3 * max(1.0, abs(shown))
        latency_ms = float(field_value(page, "update time").split()[0])
        assert latency_ms > 0
        screenshot(page, "explorer.png", tmp_path)
        assert errors == []
        page.close()
    finally:
        server.terminate()
        server.wait(30)


def test_explorer_population_unit_selector_matches_export(population_run, tmp_path):
    """Choosing a unit shows that unit's response to its own mesh, as ``export --unit``."""
    from lit3d.commands import explore

    explorer = explore.run(["--run", str(population_run), "--port", str(free_port()),
                            "--light", "120,60"], serve=False)
    try:
        assert explorer.unit_control.visible
        assert explorer.unit_control.options == tuple(str(u) for u in range(UNITS))
        explorer.idle()
        first = explorer.shown["response"]
        explorer.unit_control.value = "5"
        time.sleep(0.2)
        explorer.idle()
        assert explorer.shown["unit"] == 5 and "unit 5" in explorer.shown_text.value
        expected = exported_response(population_run, tmp_path, "120,60", unit=5, spp=4)
        assert explorer.shown["response"] == pytest.approx(expected, abs=1e-4)
        assert explorer.shown["response"] != first
    finally:
        explorer.stop()


def test_explorer_of_an_mrd_run_scores_every_camera_and_stage(mrd_run):
    """Per-camera similarity of the final mesh is the run's last validation's (same seeds and
    samples); the kept remesh stage is offered and scores differently."""
    from lit3d.commands import explore

    explorer = explore.run(["--run", str(mrd_run), "--port", str(free_port())], serve=False)
    try:
        explorer.idle()
        per_view = explorer.shown["per_view"]
        assert len(per_view) == 4
        summary = json.loads((mrd_run / "summary.json").read_text())
        assert per_view.tolist() == pytest.approx(summary["per_view_similarity"], abs=1e-4)
        assert list(explorer.meshes) == ["final mesh", "stage 0 (epoch 3)"]
        explorer.view_control.value = 2
        time.sleep(0.2)
        assert explorer.similarity_text.value == f"{float(per_view[2]):.6g}"
        explorer.stage_control.value = "stage 0 (epoch 3)"
        time.sleep(0.2)
        explorer.idle()
        assert explorer.shown["stage"] == "stage 0 (epoch 3)"
        assert not (explorer.shown["per_view"] == per_view).all()
    finally:
        explorer.stop()


def test_explorer_bad_input_is_one_line_and_exit_2(mei_run, tmp_path):
    not_a_run = lit3d("explore", "--run", str(tmp_path))
    unknown_unit = lit3d("explore", "--run", str(mei_run), "--unit", "7")
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        in_use = lit3d("explore", "--run", str(mei_run), "--port",
                       str(busy.getsockname()[1]))
    for result, words in ((not_a_run, "is not a run directory"),
                          (unknown_unit, "unit 7"), (in_use, "cannot listen on")):
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.stderr


# -- the atlas ---------------------------------------------------------------------------------
def test_atlas_of_a_population_opens_from_disk_sorts_and_filters(browser, population_run,
                                                                 tmp_path):
    out = tmp_path / "atlas"
    tuned = lit3d("tune", "--run", str(population_run), "--unit", "3", "--azimuths", "0,30",
                  "--elevations", "0", "--light_azimuths", "0,90", "--light_elevations", "45",
                  "--spp", "2")
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert (population_run / "tuning" / "neuron_3" / "pose.png").is_file()
    result = lit3d("atlas", str(population_run), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((population_run / "metrics.json").read_text())
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto((out / "index.html").as_uri())
    cards = page.locator("article.card")
    assert cards.count() == UNITS
    values = [float(v) for v in page.eval_on_selector_all(
        "article.card", "cards => cards.map(c => c.dataset.response)")]
    assert values == sorted(values, reverse=True)
    sidecars = [json.loads(p.read_text()) for p in out.glob("cards/*/stimulus/stimulus.json")]
    assert sorted(s["neuron"] for s in sidecars) == list(range(UNITS))
    expected = sorted((s["renders"][0]["normalized_response"] for s in sidecars), reverse=True)
    assert values == pytest.approx(expected, abs=1e-6)
    assert page.locator("article.card dd").first.inner_text() == (
        f"{metrics['units'][0]['self_intersections']:.4g}")
    page.select_option("#sort", "response-asc")
    ascending = [float(v) for v in page.eval_on_selector_all(
        "article.card", "cards => cards.map(c => c.dataset.response)")]
    assert ascending == sorted(values)
    page.fill("#filter", "unit 1")  # units 1 and 10-15
    assert page.locator("article.card:visible").count() == 7
    assert page.locator("#count").inner_text() == f"7 of {UNITS} cards"
    page.fill("#filter", "")
    images = page.locator("article.card img")
    # model input, render, object, turntable; and unit 3's pose and light tuning
    assert images.count() == UNITS * 4 + 2
    tuned_card = page.locator('article.card[data-text$="unit 3"]')
    assert tuned_card.locator("figcaption").all_inner_texts()[-2:] == ["pose tuning",
                                                                       "light tuning"]
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=image.element_handle())
        assert image.evaluate("img => img.naturalWidth") > 0, image.get_attribute("src")
    assert all(url.startswith("file://") for url in requests)
    screenshot(page, "atlas.png", tmp_path)
    assert errors == []
    page.close()


def test_atlas_bad_input_is_one_line_and_exit_2(tmp_path):
    result = lit3d("atlas", str(tmp_path / "missing"), "--out", str(tmp_path / "atlas"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lit3d atlas: error: run directory not found: {tmp_path / 'missing'}"]
    assert not (tmp_path / "atlas").exists()


def test_atlas_of_200_units_loads_in_under_two_seconds(browser, tmp_path):
    """A synthetic 200-unit atlas (four small images a card) in this CPU's Chromium."""
    import numpy as np
    from PIL import Image

    from lit3d.viewer.atlas import Card, write_atlas

    rng = np.random.default_rng(0)
    cards = []
    for k in range(200):
        images = {}
        for name in ("input", "render", "object", "turntable"):
            path = tmp_path / "atlas" / "cards" / f"{k:04d}" / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
            images[name] = path.relative_to(tmp_path / "atlas").as_posix()
        cards.append(Card(title=f"synthetic unit {k}", run="synthetic", response=float(k),
                          normalized=float(rng.random()), measures={"area_ratio": 1.5},
                          images=images))
    index = write_atlas(cards, tmp_path / "atlas")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(index.as_uri(), wait_until="load")
    load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    assert page.locator("article.card").count() == 200
    assert 0 < load_ms < 2000, f"loaded in {load_ms:.0f} ms"
    page.close()
