"""Files a config names by path or URL (meshes, environment maps, measured BSDFs): fetched once
into the cache, checked against SHA-256, and extracted from an archive when they ship in one.

The download, cache and checksum are :func:`lit3d.models.weights.fetch_weights`'s, shared with
network weights. A URL without a pinned ``sha256`` logs the file's digest so that a config can
pin it; a local path always works in place of a URL.
"""

from __future__ import annotations

import logging
import tarfile
import zipfile
from pathlib import Path

from lit3d.models.weights import WeightsError, fetch_weights, is_url, sha256_of

log = logging.getLogger(__name__)


def require_file(path: str, noun: str) -> None:
    """Raises ``FileNotFoundError("<noun> not found: <path>")`` unless ``path`` is a URL or an
    existing file: the early check of a config's local path, before anything is fetched."""
    if not is_url(path) and not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"{noun} not found: {Path(path).expanduser()}")


def fetch_asset(path: str, sha256: str | None = None, member: str | None = None,
                what: str = "file") -> Path:
    """Local path of ``path`` (a file path or an ``http(s)://``/``file://`` URL), downloaded into
    the cache once and verified against ``sha256`` (full digest or prefix) when given; with
    ``member``, the file of that name inside the tar/zip archive ``path`` (extracted once next
    to the cached archive). ``what`` names the file in errors.

    Raises:
        FileNotFoundError: a local ``path`` that does not exist.
        ValueError: the download failed, the checksum differs, or the archive lacks ``member``;
            the message says how to supply the file by hand.
    """
    require_file(path, f"{what} file")
    try:
        local = fetch_weights(path, sha256, what=what, config_key="path")
    except WeightsError as error:
        raise ValueError(str(error)) from error
    if is_url(path) and not sha256:
        log.warning("%s has sha256 %s; set `sha256:` in the config to pin it", local,
                    sha256_of(local))
    return local if member is None else extract_member(local, member)


def _same_member(name: str, member: str) -> bool:
    return name.removeprefix("./").rstrip("/") == member.removeprefix("./").rstrip("/")


def extract_member(archive: Path, member: str) -> Path:
    """Extracts ``member`` of a tar or zip ``archive`` into ``<archive>.d/`` (once) and returns
    its path; a leading ``./`` in the archive's names or in ``member`` does not matter. Raises
    ``ValueError`` if the archive is unreadable or lacks the member."""
    target = archive.with_name(archive.name + ".d") / member.removeprefix("./")
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                names = z.namelist()
                name = next((n for n in names if _same_member(n, member)), None)
                data = z.read(name) if name is not None else None
        else:
            with tarfile.open(archive) as t:
                infos = [i for i in t if i.isfile()]
                names = [i.name for i in infos]
                info = next((i for i in infos if _same_member(i.name, member)), None)
                handle = t.extractfile(info) if info is not None else None
                data = handle.read() if handle is not None else None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"could not read archive {archive}: {error}") from error
    if data is None:
        alike = [n for n in names if Path(n).name == Path(member).name][:3]
        hint = f"; files of that name: {', '.join(alike)}" if alike else ""
        raise ValueError(f"archive {archive} has no member {member!r}{hint}")
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target
