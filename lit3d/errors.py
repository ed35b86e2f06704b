"""Errors that name a problem with the user's input.

The command line (:func:`lit3d.cli.main`) prints an :class:`InputError` (and, while the config
is parsed and its objects are built, any ``ValueError``/``OSError``/``LookupError``/
``TypeError`` raised by lit3d) as one line, ``lit3d fit: error: <message>``, without a
traceback, and exits with status 2 before anything is written to the log dir.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (config, file, checkpoint) described by its message."""


class CheckpointMismatchError(InputError):
    """A checkpoint written by another config than the one resuming from it."""
