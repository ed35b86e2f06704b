"""What both explorers share: a viser server on a checked port, a worker that recomputes only
the newest state, and camera frustums of lit3d views.

viser (a web viewer for 3D vision research) serves its browser client from its own wheel, so
the explorer runs offline. Its controls call back on worker threads; :class:`Latest` runs the
(slow) render on one thread of its own, skipping states that were superseded while it worked.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from typing import Any, Callable

import numpy as np
import torch

from lit3d.data.views import Views
from lit3d.errors import InputError


def check_port(host: str, port: int) -> None:
    """Raises :class:`InputError` unless ``port`` on ``host`` is free to listen on."""
    if not 0 < port < 65536:
        raise InputError(f"--port must lie in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InputError(f"cannot listen on {host}:{port} ({error.strerror or error}): "
                             "is another server using it? choose --port") from None


def start_server(host: str, port: int):
    """A quiet :class:`viser.ViserServer` on ``host:port`` (checked first), world ``+z`` up."""
    import viser

    check_port(host, port)
    with contextlib.redirect_stdout(io.StringIO()):  # viser prints a banner; lit3d prints the URL
        server = viser.ViserServer(host=host, port=port, verbose=False)
    server.scene.set_up_direction("+z")
    return server


def stop_server(server) -> None:
    """Stops ``server`` (quietly: viser prints when it stops)."""
    with contextlib.redirect_stdout(io.StringIO()):
        server.stop()


def camera_pose(view: Views) -> tuple[np.ndarray, np.ndarray, float]:
    """``(wxyz (4,), position (3,), fov in radians)`` of view 0 as a viser camera frustum
    (its local ``+z`` looks forward, ``+y`` points image-down)."""
    from viser.transforms import SO3

    position = view.camera_position[0].detach().cpu().double()
    forward = view.camera_target[0].detach().cpu().double() - position
    forward = forward / forward.norm()
    up = view.camera_up[0].detach().cpu().double()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward], dim=1).numpy()
    return (SO3.from_matrix(rotation).wxyz, position.numpy(),
            float(np.radians(float(view.fov_deg[0]))))


class Latest:
    """Runs ``work(state)`` on a thread of its own for the newest state :meth:`submit`-ted;
    states submitted while it works replace each other, so a dragged slider costs one render
    per finished render, not one per position. ``on_error`` receives what ``work`` raised."""

    def __init__(self, work: Callable[[Any], None], on_error: Callable[[BaseException], None]):
        self._work, self._on_error = work, on_error
        self._state: Any = None
        self._pending = False
        self._cond = threading.Condition()
        self._busy = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="lit3d-explore")
        self._thread.start()

    def submit(self, state: Any) -> None:
        with self._cond:
            self._state, self._pending = state, True
            self._cond.notify()

    def idle(self, timeout: float = 60.0) -> bool:
        """Waits until nothing is pending or running; returns whether that happened."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                state, self._pending, self._busy = self._state, False, True
            try:
                self._work(state)
            except Exception as error:  # shown in the page; the server keeps running
                self._on_error(error)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
