"""Model weights from a path or a URL: cached, verified by SHA-256, loaded into a module.

Every checkpoint lit3d loads, the offline demo network's included, goes through
:func:`fetch_weights` and :func:`load_weights`, so the same code (cache, checksum, key mapping,
clear errors) is exercised by the tests and by users' real weights.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from lit3d.errors import InputError


class WeightsError(InputError):
    """Weights are missing, unreachable, corrupt or do not fit the model (bad input: the
    command line reports it in one line)."""


def cache_dir() -> Path:
    """``$LIT3D_CACHE`` or ``$TORCH_HOME/lit3d`` (default ``~/.cache/torch/lit3d``)."""
    if os.environ.get("LIT3D_CACHE"):
        return Path(os.environ["LIT3D_CACHE"]).expanduser()
    return Path(torch.hub.get_dir()).parent / "lit3d"


def is_url(source: str | os.PathLike) -> bool:
    return urllib.parse.urlparse(str(source)).scheme in ("http", "https", "file", "ftp")


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: Files verified in this process: (resolved path, size, modification time in ns, digest).
_VERIFIED: set[tuple[str, int, int, str]] = set()


def verify_sha256(path: Path, sha256: str | None) -> None:
    """Raises :class:`WeightsError` unless the file's SHA-256 starts with ``sha256`` (a full
    digest or a prefix, such as torchvision's 8-character file-name prefixes); ``None`` skips.
    A file verified before in this process, unchanged since (same size and modification
    time), is not read again (a scene's mesh and map from one 194 MB archive: one hash)."""
    if not sha256:
        return
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, sha256.lower())
    if key in _VERIFIED:
        return
    actual = sha256_of(path)
    if not actual.startswith(sha256.lower()):
        raise WeightsError(
            f"checksum mismatch for {path}: expected sha256 {sha256}..., got {actual}. The file "
            "is corrupt or not the file the config means; delete it and fetch it again."
        )
    _VERIFIED.add(key)


def fetch_weights(source: str | os.PathLike, sha256: str | None = None,
                  cache: str | os.PathLike | None = None, progress: bool = True,
                  what: str = "weights", config_key: str = "weights") -> Path:
    """Local path of a checkpoint (or any file: ``what`` names it in errors, ``config_key`` is
    the config entry that takes a local path instead) given as a path or a URL.

    A URL is downloaded once into ``cache`` (default :func:`cache_dir`) under its file name and
    re-used afterwards; a partial download never lands in the cache. The file (cached or local)
    is verified against ``sha256`` when given.

    Raises:
        WeightsError: the file does not exist, the download failed (offline?), or the checksum
            does not match. The message says how to supply the file by hand.
    """
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise WeightsError(f"{what} file not found: {path}")
        verify_sha256(path, sha256)
        return path
    url = str(source)
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pth"
    target = Path(cache or cache_dir()) / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
            partial = Path(tmp.name)
        try:
            torch.hub.download_url_to_file(url, str(partial), progress=progress)
            verify_sha256(partial, sha256)
            shutil.move(partial, target)
        except WeightsError:
            raise
        except (OSError, urllib.error.URLError, ValueError) as error:
            raise WeightsError(
                f"could not download {url} ({error}). Without internet access, download it on "
                f"another machine and pass its local path as `{config_key}:` (with `sha256:` to "
                f"verify it), or place it at {target}."
            ) from error
        finally:
            partial.unlink(missing_ok=True)
    else:
        verify_sha256(target, sha256)
    return target


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of a checkpoint file: unwraps ``state_dict``/``model`` entries and strips the
    ``module.`` prefix that DataParallel/DDP checkpoints carry."""
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch raises many types for a broken file)
        raise WeightsError(f"could not read checkpoint {path}: {error}") from error
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def match_by_order(state: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Renames a checkpoint's tensors onto ``model``'s state-dict keys by position, for a
    checkpoint of the same architecture saved under other names; every shape must match."""
    target = model.state_dict()
    if len(state) != len(target):
        raise WeightsError(
            f"checkpoint has {len(state)} tensors, the model {len(target)}: not the same network"
        )
    renamed = {}
    for (src, value), (dst, expected) in zip(state.items(), target.items()):
        if value.shape != expected.shape:
            raise WeightsError(
                f"checkpoint tensor {src} {tuple(value.shape)} does not fit {dst} "
                f"{tuple(expected.shape)}"
            )
        renamed[dst] = value
    return renamed


def load_weights(model: nn.Module, source: str | os.PathLike, sha256: str | None = None,
                 remap: Callable[[dict[str, Tensor], nn.Module], Mapping[str, Tensor]]
                 | None = None,
                 strict: bool = True) -> nn.Module:
    """Fetches (:func:`fetch_weights`), reads, optionally renames (``remap``) and loads a
    checkpoint into ``model``; size or key mismatches raise :class:`WeightsError` naming them."""
    state = read_state_dict(fetch_weights(source, sha256))
    if remap is not None:
        state = dict(remap(state, model))
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as error:
        raise WeightsError(
            f"weights {source} do not fit {type(model).__name__}: {error}") from error
    return model
