"""``WandbLogger``: Lightning's W&B logger that never fails a run because of W&B.

Online when the user is logged in (``WANDB_API_KEY`` or a ``wandb login`` entry in ``~/.netrc``)
and the server answers; otherwise, and whenever ``wandb.init`` itself fails, it logs offline
into ``<save_dir>/wandb/offline-run-*`` and says so once (``wandb sync <dir>`` uploads it later).
``WANDB_MODE=offline`` (or ``disabled``) is respected as it is. It carries the settings of
:class:`callbacks.LogMedia`, which the command line attaches to every fit: renders and the mesh
(W&B ``Object3D``) every ``media_every_n_epochs`` epochs and at the end.
"""

from __future__ import annotations

import netrc
import os
import socket
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_warn


def wandb_server() -> tuple[str, int]:
    """(host, port) of the W&B server (``WANDB_BASE_URL``, default ``https://api.wandb.ai``)."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def online_problem(timeout_s: float = 3.0) -> str | None:
    """Why an online W&B run cannot start here (no credentials, server unreachable), or
    ``None`` if it can (as far as a quick check tells)."""
    host, port = wandb_server()
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        try:
            has_key = netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
        except (OSError, netrc.NetrcParseError):
            has_key = False
    if not has_key:
        return "not logged in (no WANDB_API_KEY, no `wandb login` entry)"
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        return f"{host}:{port} is unreachable ({error})"
    return None


class WandbLogger(_LightningWandbLogger):
    """Lightning's :class:`~lightning.pytorch.loggers.WandbLogger` with an offline fallback.

    Args:
        media_every_n_epochs: renders + mesh logged every this many epochs (0: only at the end).
        check_timeout_s: how long the reachability check waits for the server.
        *args, **kwargs: as Lightning's ``WandbLogger`` (``project``, ``name``, ``save_dir``,
            ``offline``, ``log_model``, ...).
    """

    def __init__(self, *args: Any, media_every_n_epochs: int = 5, check_timeout_s: float = 3.0,
                 **kwargs: Any):
        if media_every_n_epochs < 0:
            raise ValueError(f"media_every_n_epochs must be >= 0, got {media_every_n_epochs}")
        super().__init__(*args, **kwargs)
        self.media_every_n_epochs = int(media_every_n_epochs)
        self.check_timeout_s = float(check_timeout_s)
        self.fallback_reason: str | None = None

    def _chosen_offline(self) -> bool:
        mode = os.environ.get("WANDB_MODE", "").lower()
        return (self._offline or mode in ("offline", "dryrun", "disabled")
                or self._wandb_init.get("mode") in ("offline", "disabled"))

    def _go_offline(self, reason: str) -> None:
        self.fallback_reason = reason
        self._offline = True
        self._wandb_init["mode"] = "offline"
        where = os.path.join(self.save_dir or ".", "wandb")
        rank_zero_warn(f"W&B: {reason}; logging offline to {where} (upload later with "
                       "`wandb sync <run dir>`)")

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None and not self._chosen_offline():
            reason = online_problem(self.check_timeout_s)
            if reason is not None:
                self._go_offline(reason)
        try:
            return _LightningWandbLogger.experiment.fget(self)
        except Exception as error:  # wandb.init: auth, network, server errors
            if self._offline:
                raise
            self._go_offline(f"wandb.init failed ({type(error).__name__}: {error})")
            return _LightningWandbLogger.experiment.fget(self)
