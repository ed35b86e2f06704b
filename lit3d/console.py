"""What lit3d's commands print: their own messages, and nothing from the libraries under them.

:func:`quiet` (called by every command) keeps Lightning's informational lines (accelerator
banners, model summaries, tips for other products, "Seed set to ...") and known deprecation
warnings of its dependencies off the console, so a command's output is its own: progress, its
results, and on bad input exactly one error line. ``LIT3D_VERBOSE=1`` lets them through.
:func:`info` prints one of lit3d's messages (on rank 0 under DDP) to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from lightning.pytorch.utilities import rank_zero_only

#: Warnings of dependencies that say nothing about the user's run.
LIBRARY_WARNINGS = (
    r".*treespec, LeafSpec.*",  # torch pytree deprecation, raised inside Lightning
    r".*does not have many workers.*",  # the views are made in the main process on purpose
    r".*LightningCLI's args parameter is intended.*",
    r".*module\(s\) in eval mode at the start of training.*",  # frozen networks, by design
)

_log = logging.getLogger("lit3d")


def quiet() -> None:
    """Silences the libraries' informational output (see the module docstring)."""
    if not _log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
        _log.propagate = False
    if os.environ.get("LIT3D_VERBOSE"):
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


@rank_zero_only
def info(message: str) -> None:
    """Prints one of lit3d's own messages to stderr (rank 0 only)."""
    quiet()
    _log.info(message)


def progress(iterable, description: str, total: int | None = None):
    """``iterable`` with a progress bar on stderr saying ``description``, when stderr is a
    terminal (no bar in logs and pipes)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, total=total, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())
