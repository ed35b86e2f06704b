"""The live explorer of an MRD shape reconstruction (``lit3d explore --run DIR``).

The page shows the reconstruction (and, switchable, the target) with the rig's cameras around
it; for the chosen camera the target's and the reconstruction's renders side by side and their
similarity: the network's hypersphere (cosine) similarity of the two latents when the run has a
network, else the mean absolute pixel difference. Every view's value is listed. Runs that kept
their remesh stages (:meth:`lit3d.runs.Run.stages`) can show each stage instead of the final mesh.
Renders use the run's evaluation seeds and samples, as its validation did.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lit3d.analysis.probe import render_picture
from lit3d.modules.mrd_base import TARGET_SEED
from lit3d.viewer.server import Latest, camera_pose, start_server, stop_server

FINAL = "final mesh"


class MRDExplorer:
    """The explorer of an MRD shape run: ``run`` (:class:`~lit3d.runs.Run`) and ``cli`` what
    its config builds (:func:`lit3d.commands.open_analysed`)."""

    def __init__(self, run, cli, host: str = "127.0.0.1", port: int = 8080):
        from lit3d.errors import InputError

        self.module = cli.model.eval()
        self.views = cli.datamodule.views
        meshes = run.meshes()
        if "mesh" not in meshes:
            raise InputError(f"run {run.path} has no final mesh (mesh.ply): did the fit end?")
        self.meshes = {FINAL: meshes["mesh"], **run.stages()}
        self._loaded: dict[str, tuple] = {}
        self.targets = self.module.render_target(self.views, seed=TARGET_SEED,
                                                 spp=self.module.hparams.target_spp)
        self.latency_s: float | None = None
        self.shown: dict = {}
        self.server = start_server(host, port)
        self._build_gui()
        self._worker = Latest(self._update, lambda e: setattr(self.shown_text, "value",
                                                              f"error: {e}"))
        self._worker.submit(FINAL)

    def _build_gui(self) -> None:
        gui, scene = self.server.gui, self.server.scene
        self.stage_control = gui.add_dropdown("mesh", list(self.meshes), initial_value=FINAL,
                                              visible=len(self.meshes) > 1)
        self.view_control = gui.add_slider("camera", min=0, max=len(self.views) - 1, step=1,
                                           initial_value=0)
        self.show_target = gui.add_checkbox("show the target", initial_value=False)
        self.similarity_text = gui.add_text("similarity", initial_value="", disabled=True)
        self.shown_text = gui.add_text("shown", initial_value="rendering...", disabled=True)
        blank = np.zeros((8, 8, 3), np.uint8)
        self.target_image = gui.add_image(blank, label="target")
        self.current_image = gui.add_image(blank, label="reconstruction")
        self.table = gui.add_markdown("")
        self._toggle_target()
        for i in range(len(self.views)):
            wxyz, position, fov = camera_pose(self.views[i])
            scene.add_camera_frustum(f"/cameras/{i}", fov=fov, aspect=1.0, scale=0.3,
                                     wxyz=wxyz, position=position, color=(40, 90, 200))
        self.stage_control.on_update(lambda _: self._worker.submit(self.stage_control.value))
        self.view_control.on_update(lambda _: self._show_view())
        self.show_target.on_update(lambda _: self._toggle_target())

    def _toggle_target(self) -> None:
        """Shows or hides the target mesh (semi-transparent) as the checkbox says."""
        self.server.scene.add_mesh_simple(
            "/target", self.module.target_vertices.cpu().numpy(),
            self.module.target_faces.cpu().numpy().astype(np.int32), color=(230, 150, 90),
            opacity=0.6, visible=bool(self.show_target.value))

    @torch.no_grad()
    def compute(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, str]:
        """``(renders (N, 3, H, W), per-view similarity (N,), its name)`` of ``stage``'s mesh
        in every rig view."""
        from lit3d.geometry.io import load_mesh
        from lit3d.losses import latents_of
        from lit3d.metrics.similarity import hypersphere_similarity

        if stage not in self._loaded:
            self._loaded[stage] = load_mesh(self.meshes[stage])
        vertices, faces = self._loaded[stage]
        index = torch.arange(len(self.views))
        images = self.module.render(vertices.float(), faces.long(), self.views,
                                    seed=self.module.eval_seeds(index),
                                    spp=self.module.hparams.eval_spp)
        if self.module.model is None:
            return images, (images - self.targets).abs().mean((1, 2, 3)), "pixel MAE"
        per_view = hypersphere_similarity(latents_of(self.module.model, images),
                                          latents_of(self.module.model, self.targets))
        return images, per_view, f"{self.module.network} cosine similarity"

    def _update(self, stage: str) -> None:
        start = time.perf_counter()
        images, per_view, name = self.compute(stage)  # on the worker thread only
        self.latency_s = time.perf_counter() - start
        vertices, faces = self._loaded[stage]
        self.shown = {"stage": stage, "images": images, "per_view": per_view, "name": name}
        rows = "\n".join(f"| {i} | {float(v):.4f} |" for i, v in enumerate(per_view))
        with self.server.atomic():
            self.server.scene.add_mesh_simple("/reconstruction", vertices.cpu().numpy(),
                                              faces.cpu().numpy().astype(np.int32),
                                              color=(200, 200, 200))
            self.table.content = (f"**{name}, {stage}** (mean {float(per_view.mean()):.4f})"
                                  f"\n\n| camera | value |\n|---|---|\n{rows}")
            self._show_view()

    def _show_view(self) -> None:
        if not self.shown:
            return
        i = int(self.view_control.value)
        self.target_image.image = render_picture(self.targets[i], 256)
        self.current_image.image = render_picture(self.shown["images"][i], 256)
        self.similarity_text.value = f"{float(self.shown['per_view'][i]):.6g}"
        self.shown_text.value = f"{self.shown['stage']}, camera {i}: {self.shown['name']}"

    def idle(self, timeout: float = 120.0) -> bool:
        return self._worker.idle(timeout)

    def stop(self) -> None:
        stop_server(self.server)
