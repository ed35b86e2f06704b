"""The live explorer of a fitted 3D-MEI (``lit3d explore --run DIR``).

The page shows the fitted mesh in an orbitable 3D view with the fit's camera and the point light
where they are, controls for the object pose and the light direction (the conventions of
``lit3d tune``), samples per pixel, seed and - for a population - the unit; beside them the
render, the image as the response model sees it (after its preprocessing) and the unit's
response, recomputed with the fit's renderer on every change (:func:`lit3d.analysis.probe.probe`,
equal to what ``lit3d export`` records for the same settings). "Save view" writes the current
view in the ``export`` format.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lit3d.analysis.probe import Look, input_picture, probe, render_picture
from lit3d.analysis.tuning import light_angles
from lit3d.viewer.server import Latest, camera_pose, start_server, stop_server

#: Pixels of the images shown in the control panel.
PANEL_PIXELS = 256


def describe(unit: int, look: Look) -> str:
    """The one-line description of a look that the page shows beside its response."""
    light = "the fit's light" if look.light is None else (
        f"light az {look.light[0]:g} el {look.light[1]:g}")
    return (f"unit {unit}, pose az {look.pose[0]:g} el {look.pose[1]:g}, {light}, "
            f"spp {look.spp}, seed {look.seed}")


class MEIExplorer:
    """The explorer of a fitted 3D-MEI (:class:`lit3d.commands.fitted.Fitted`); ``out`` is
    where "Save view" writes ``view_<n>/``; ``light`` the starting light direction (degrees;
    ``None``: the fit's)."""

    def __init__(self, fitted, host: str = "127.0.0.1", port: int = 8080,
                 out: str | Path = "views", light: tuple[float, float] | None = None):
        self.fitted = fitted
        self.out = Path(out)
        self.unit = fitted.units[0]
        self.look = Look(light=light, spp=fitted.spp)
        self.latency_s: float | None = None
        self.shown: dict[str, Any] = {}
        self._stimuli: dict[int, tuple] = {}
        self._render_lock = threading.Lock()  # renders (updates and saves) one at a time
        self.server = start_server(host, port)
        self.server.gui.configure_theme(control_width="large")
        view = fitted.view
        target = view.camera_target[0].cpu().numpy()
        self._distance = float((view.camera_position[0] - view.camera_target[0]).norm())
        self.server.initial_camera.look_at = target
        self.server.initial_camera.position = target + self._distance * np.array([1.1, -1.1, 0.9])
        self._build_gui()
        self._worker = Latest(self._update, self._show_error)
        self._worker.submit((self.unit, self.look))

    # -- the page ------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui = self.server.gui
        units = [str(u) for u in self.fitted.units]
        self.unit_control = gui.add_dropdown("unit", units, initial_value=units[0],
                                             visible=len(units) > 1)
        self.object_az = gui.add_slider("object azimuth", min=-180, max=180, step=1,
                                        initial_value=0)
        self.object_el = gui.add_slider("object elevation", min=-90, max=90, step=1,
                                        initial_value=0)
        light = self._light_angles()
        self.light_az = gui.add_slider("light azimuth", min=0, max=360, step=1,
                                       initial_value=light[0])
        self.light_el = gui.add_slider("light elevation", min=1, max=90, step=1,
                                       initial_value=light[1])
        self.spp_control = gui.add_number("samples per pixel", initial_value=self.look.spp,
                                          min=1, max=4096, step=1)
        self.seed_control = gui.add_number("seed", initial_value=0, min=0, max=2**31 - 1,
                                           step=1)
        self.response_text = gui.add_text("response", initial_value="", disabled=True)
        self.normalized_text = gui.add_text("normalized response", initial_value="",
                                            disabled=True)
        self.shown_text = gui.add_text("shown", initial_value="rendering...", disabled=True,
                                       multiline=True)
        self.latency_text = gui.add_text("update time", initial_value="", disabled=True)
        blank = np.zeros((8, 8, 3), np.uint8)
        self.render_image = gui.add_image(blank, label="render (sRGB)")
        self.input_image = gui.add_image(blank, label="the model's input (0 = grey)")
        self.save_button = gui.add_button("Save view")
        self.saved_text = gui.add_text("saved", initial_value="", disabled=True)
        for control in (self.unit_control, self.object_az, self.object_el, self.light_az,
                        self.light_el, self.spp_control, self.seed_control):
            control.on_update(lambda _event: self._changed())
        self.save_button.on_click(lambda _event: self.save())

    def _light_angles(self) -> tuple[float, float]:
        """The starting light direction shown on the sliders (whole degrees): ``look.light``
        or the fit's light's own (:func:`~lit3d.analysis.tuning.light_angles`)."""
        if self.look.light is not None:
            return self.look.light
        azimuth, elevation = light_angles(self.fitted.view)
        return float(round(azimuth) % 360), float(min(90, max(1, round(elevation))))

    def _changed(self) -> None:
        try:
            spp = max(1, int(self.spp_control.value))
            seed = max(0, int(self.seed_control.value))
        except (TypeError, ValueError):
            return
        self.unit = int(self.unit_control.value)
        self.look = replace(self.look, pose=(float(self.object_az.value),
                                             float(self.object_el.value)),
                            light=(float(self.light_az.value), float(self.light_el.value)),
                            spp=spp, seed=seed)
        self._worker.submit((self.unit, self.look))

    # -- computing -----------------------------------------------------------------------------
    def stimulus(self, unit: int) -> tuple:
        if unit not in self._stimuli:
            self._stimuli[unit] = self.fitted.stimulus(unit)
        return self._stimuli[unit]

    def compute(self, unit: int, look: Look):
        """:func:`~lit3d.analysis.probe.probe` of ``unit`` as ``look`` says."""
        module, vertices, faces = self.stimulus(unit)
        return probe(module, vertices, faces, self.fitted.view, look)

    def _update(self, state: tuple[int, Look]) -> None:
        unit, look = state
        start = time.perf_counter()
        with self._render_lock:
            result = self.compute(unit, look)
        self.latency_s = time.perf_counter() - start
        faces = self.stimulus(unit)[2]
        with self.server.atomic():
            self.server.scene.add_mesh_simple(
                "/stimulus", result.vertices.detach().cpu().numpy().astype(np.float32),
                faces.cpu().numpy().astype(np.int32), color=(200, 200, 200),
                side="double")
            self.server.scene.add_icosphere(
                "/light", radius=0.03 * self._distance, color=(255, 210, 60),
                position=result.view.light_position[0].cpu().numpy())
            wxyz, position, fov = camera_pose(result.view)
            self.server.scene.add_camera_frustum(
                "/camera", fov=fov, aspect=1.0, scale=1.0, wxyz=wxyz, position=position,
                image=render_picture(result.image), color=(40, 90, 200))
            self.render_image.image = render_picture(result.image, PANEL_PIXELS)
            self.input_image.image = input_picture(result.model_input, PANEL_PIXELS)
            self.response_text.value = f"{result.response:.6g}"
            self.normalized_text.value = (f"{result.normalized:.6g}"
                                          if result.normalized == result.normalized else "n/a")
            self.latency_text.value = f"{1000 * self.latency_s:.0f} ms"
            self.shown_text.value = describe(unit, look)
        self.shown = {"unit": unit, "look": look, "response": result.response,
                      "normalized": result.normalized}

    def _show_error(self, error: BaseException) -> None:
        self.shown_text.value = f"error: {error}"

    # -- saving --------------------------------------------------------------------------------
    def save(self) -> Path:
        """Writes the shown view (pose, light, spp, seed, render, response) as
        ``out/view_<n>/`` in the ``export`` format; returns the sidecar's path."""
        from lit3d.analysis.export import export_unit

        self._worker.idle()
        unit, look = self.shown["unit"], self.shown["look"]
        module, vertices, faces = self.stimulus(unit)
        number = len(list(self.out.glob("view_*"))) if self.out.is_dir() else 0
        run = self.fitted.run
        source = {"run": str(run.path) if run else None,
                  "config": str(run.config_file) if run else None}
        with self._render_lock:
            path = export_unit(self.out / f"view_{number:03d}", module, vertices, faces,
                               self.fitted.view, [look.pose], None if look.light is None
                               else [look.light], spp=look.spp, seed=look.seed,
                               source=source, allow_self_intersections=True)
        self.saved_text.value = str(path)
        return path

    def idle(self, timeout: float = 60.0) -> bool:
        return self._worker.idle(timeout)

    def stop(self) -> None:
        stop_server(self.server)
