"""Pose and light tuning sweeps (lit3d.analysis.tuning, ``python -m lit3d tune``)."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit3d.analysis.tuning import light_directions, light_sweep, pose_rotations, pose_sweep
from lit3d.data.views import overhead_views
from lit3d.figures import read_description
from lit3d.geometry.io import save_mesh
from lit3d.geometry.primitives import Sheet
from lit3d.metrics.gabor import fit_gabor
from lit3d.models.cells import SimpleCell
from lit3d.render.mitsuba import MitsubaRenderer

ROOT = Path(__file__).resolve().parents[1]


def corrugated_sheet(orientation_deg: float = 0.0, cycles_per_image: float = 3.0):
    """A sheet with sinusoidal ridges whose rendered bars lie at ``orientation_deg`` in the
    overhead camera's image, at the cell's frequency (image width 2·10·tan 7°)."""
    sheet = Sheet(resolution=48, size=2.0).build()
    vertices = sheet.vertices.clone()
    frequency = cycles_per_image / (2 * 10 * math.tan(math.radians(7.0)))
    t = math.radians(orientation_deg)
    across = -vertices[:, 0] * math.sin(t) + vertices[:, 1] * math.cos(t)
    vertices[:, 2] = 0.06 * torch.sin(2 * math.pi * frequency * across)
    return vertices, sheet.faces


def test_pose_rotations_are_rotations_with_the_documented_axes():
    az = torch.tensor([0.0, 90.0, 30.0])
    el = torch.tensor([0.0, 0.0, 45.0])
    r = pose_rotations(az, el)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(r[0], torch.eye(3), atol=1e-6)
    assert torch.allclose(r[1] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    # elevation tilts the +y axis towards +z (about x)
    tilt = pose_rotations(torch.tensor([0.0]), torch.tensor([90.0]))[0]
    assert torch.allclose(tilt @ torch.tensor([0.0, 1, 0]), torch.tensor([0.0, 0, 1]), atol=1e-6)


def test_light_directions_cover_the_forward_hemisphere():
    view = overhead_views(light_distance=7.0)
    positions = light_directions(view, torch.arange(0.0, 360.0, 45.0),
                                 torch.tensor([10.0, 50.0, 90.0]))
    assert positions.shape == (24, 3)
    assert torch.allclose(positions.norm(dim=-1), torch.full((24,), 7.0), atol=1e-4)
    assert (positions[:, 2] > 0).all()  # in front of the sheet, on the camera's side
    assert torch.allclose(positions[-1], torch.tensor([0.0, 0, 7.0]), atol=1e-4)  # 90°: camera
    # azimuth 0 at low elevation lies on the image's right (+x)
    assert positions[0, 0] > 6.5


def test_pose_sweep_peaks_where_the_grating_aligns_with_the_cells_orientation(tmp_path):
    """Bars rendered at 0°, a simple cell preferring 45°: turning the sheet by 45° (or 225°,
    the other phase) aligns them, so the sweep's peak lies there and the best-fitting Gabor of
    the peak render has the cell's orientation. The light shines along the aligned grating's
    wave vector, so the shading has first-order contrast."""
    vertices, faces = corrugated_sheet(0.0)
    cell = SimpleCell(input_size=64, orientation_deg=45.0, frequency=3.0, sigma=0.15)
    renderer = MitsubaRenderer(image_size=64, spp=16)
    view = overhead_views(light_azimuth_deg=135.0, light_elevation_deg=45.0)
    sweep = pose_sweep(renderer, lambda images: cell(images)[:, 0], vertices, faces, view,
                       torch.arange(0.0, 360.0, 15.0), torch.tensor([0.0]), chunk=8)
    assert sweep.responses.shape == (1, 24) and sweep.images.shape == (24, 3, 64, 64)
    azimuth, elevation, peak = sweep.peak()
    assert azimuth % 180 == 45.0, sweep.responses
    assert peak > 5 * sweep.responses.median()
    fit = fit_gabor(sweep.images[int(sweep.responses.argmax())], sigma=0.15)
    assert abs(fit.orientation_deg - 45.0) <= 5.0
    rows = list(csv.DictReader(sweep.write_csv(tmp_path / "pose.csv").open()))
    assert len(rows) == 24 and float(rows[3]["azimuth_deg"]) == 45.0
    figure = read_description(sweep.plot(tmp_path / "pose.png"))
    heatmap, colorbar = figure["axes"]
    assert heatmap["title"] == "Pose tuning" and "azimuth (deg" in heatmap["xlabel"]
    assert "elevation (deg)" in heatmap["ylabel"]
    assert colorbar["colorbar"] and colorbar["ylabel"] == "response"
    sheet = read_description(sweep.contact_sheet(tmp_path / "pose_contact.png"))
    assert "azimuth and elevation" in sheet["title"]
    titles = [ax["title"] for ax in sheet["axes"]]
    assert all("az " in t and "el " in t and "response" in t for t in titles), titles
    assert [ax["ylabel"] for ax in sheet["axes"] if ax["ylabel"]] == [
        "high responses", "mid responses", "low responses"]


def test_light_sweep_writes_a_csv_and_polar_png_of_the_grid(tmp_path):
    vertices, faces = corrugated_sheet(45.0)
    cell = SimpleCell(input_size=32, orientation_deg=45.0, frequency=3.0, sigma=0.15)
    renderer = MitsubaRenderer(image_size=32, spp=4)
    azimuths, elevations = torch.arange(0.0, 360.0, 60.0), torch.tensor([20.0, 60.0])
    sweep = light_sweep(renderer, lambda images: cell(images)[:, 0], vertices, faces,
                        overhead_views(), azimuths, elevations, chunk=5)
    assert sweep.responses.shape == (2, 6)
    rows = list(csv.DictReader(sweep.write_csv(tmp_path / "light.csv").open()))
    assert len(rows) == 12
    assert {(float(r["azimuth_deg"]), float(r["elevation_deg"])) for r in rows} == {
        (a, e) for a in azimuths.tolist() for e in elevations.tolist()}
    polar = read_description(sweep.plot(tmp_path / "light.png"))["axes"][0]
    assert polar["title"].startswith("Light-direction tuning")
    assert polar["ylabel"] == "90° − light elevation (deg)"  # the radial axis
    assert polar["xlabel"] == "light azimuth (deg)"
    assert sweep.contact_sheet(tmp_path / "light_contact.png", per_group=3).is_file()
    # light along the grating's wave vector (135°/315°) shades it; along the bars it does not
    by_azimuth = sweep.responses[0]
    assert by_azimuth.max() > by_azimuth.min() * 2


def test_tune_command_writes_every_output_and_refuses_bad_grids(tmp_path):
    vertices, faces = corrugated_sheet(45.0)
    mesh = save_mesh(tmp_path / "mesh.ply", vertices, faces)
    out = tmp_path / "tuning"
    base = [sys.executable, "-m", "lit3d", "tune", "--config", "configs/mei3d_simple_cell.yaml",
            "--mesh", str(mesh), "--out", str(out)]
    command = base + ["--azimuths=-30,0,30", "--elevations", "0,20",
                      "--light_azimuths", "0:360:90", "--light_elevations", "30,80", "--spp", "4"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pose: peak response" in result.stdout and "light: peak response" in result.stdout
    for name in ("pose.csv", "pose.png", "pose_contact.png", "light.csv", "light.png",
                 "light_contact.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "pose.csv").read_text().strip().splitlines()) == 1 + 6
    assert len((out / "light.csv").read_text().strip().splitlines()) == 1 + 8
    bad = subprocess.run(base + ["--azimuths", "30:0:5"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("lit3d tune: error: bad angle grid")


@pytest.mark.parametrize("text,expected", [("0:30:10", [0.0, 10.0, 20.0]), ("5,-5", [5.0, -5.0])])
def test_grid_parsing(text, expected):
    from lit3d.commands.fitted import parse_grid

    assert parse_grid(text).tolist() == expected


def test_console_entry_point_dispatches_the_analysis_subcommands(monkeypatch, capsys):
    """The ``lit3d`` console script (pyproject) reaches the analyses, not only ``python -m``."""
    import tomllib

    from lit3d.__main__ import entry_point

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lit3d"] == "lit3d.__main__:entry_point"
    monkeypatch.setattr(sys, "argv", ["lit3d", "tune", "--config", "x.yaml",
                                      "--light_elevations", "0,45"])
    with pytest.raises(SystemExit) as exit_info:
        entry_point()
    assert exit_info.value.code == 2
    assert "lit3d tune: error: light elevations must lie in (0, 90]" in capsys.readouterr().err


def test_light_contact_sheet_shows_distinct_stimuli(tmp_path):
    """A light at 90° elevation is the same light for every azimuth: the contact sheet shows
    it once, not once per azimuth."""
    from lit3d.analysis.tuning import Sweep

    azimuths, elevations = torch.arange(0.0, 360.0, 90.0), torch.tensor([45.0, 90.0])
    responses = torch.tensor([[1.0, 2.0, 3.0, 4.0], [9.0, 9.0, 9.0, 9.0]])  # the pole is best
    images = torch.rand(8, 3, 8, 8)
    sweep = Sweep("light", azimuths, elevations, responses, images)
    assert len(sweep.distinct_index()) == 5
    sheet = read_description(sweep.contact_sheet(tmp_path / "light_contact.png", per_group=2))
    titles = [ax["title"] for ax in sheet["axes"]]
    assert sum("el 90°" in t for t in titles) == 1, titles


def test_a_bug_is_not_reported_as_bad_input(monkeypatch):
    """Only InputError (and missing files) is bad input, exit 2; a ValueError raised by a bug
    propagates with its traceback."""
    import types

    from lit3d import commands
    from lit3d.errors import InputError

    def buggy(argv):
        raise ValueError("a bug")

    def bad(argv):
        raise InputError("bad")

    for name, run in (("buggy", buggy), ("bad", bad)):
        monkeypatch.setitem(sys.modules, f"lit3d_test_{name}", types.SimpleNamespace(run=run))
    monkeypatch.setitem(commands.COMMANDS, "tune", "lit3d_test_buggy")
    with pytest.raises(ValueError, match="a bug"):
        commands.dispatch("tune", [])
    monkeypatch.setitem(commands.COMMANDS, "tune", "lit3d_test_bad")
    with pytest.raises(SystemExit) as exit_info:
        commands.dispatch("tune", [])
    assert exit_info.value.code == 2


def test_light_angles_invert_hemisphere_positions():
    from lit3d.analysis.tuning import hemisphere_positions, light_angles
    from lit3d.data.views import orbit_views

    for view in (overhead_views(), orbit_views(120.0, 30.0)):
        for az, el in ((0.0, 10.0), (45.0, 75.0), (200.0, 45.0), (359.0, 89.0)):
            position = hemisphere_positions(view, torch.tensor([az]), torch.tensor([el]))
            moved = view.replace(light_position=position)
            got_az, got_el = light_angles(moved)
            assert 0 <= got_az <= 360 and got_el == pytest.approx(el, abs=1e-3)
            assert abs((got_az - az + 180) % 360 - 180) < 1e-3  # the same angle on the circle
