"""Selecting a usable libLLVM for Dr.Jit's CPU back-end (``llvm_ad_*`` variants).

Dr.Jit needs libLLVM >= 17: version 14 is refused, and 15/16 load but abort the whole process on
the first kernel using ``dr.minimum`` (``LLVM ERROR: Cannot select: ... fminimum``). Machines often
carry an old libLLVM pulled in by other packages, so before Dr.Jit is imported we point
``DRJIT_LIBLLVM_PATH`` at the newest libLLVM >= 17 we can find (unless the user set it), and after
import we refuse to render with a clear message rather than abort.
"""

from __future__ import annotations

import glob
import os
import re
import sys

MIN_LLVM_MAJOR = 17

_SEARCH_DIRS = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib/llvm-*/lib",
    "/opt/homebrew/opt/llvm/lib",
    "/usr/local/opt/llvm/lib",
]

INSTALL_HINT = (
    "install libLLVM >= 17 (Debian/Ubuntu: `sudo apt-get install libllvm19`; or run "
    "`bash scripts/setup.sh`), or point DRJIT_LIBLLVM_PATH at such a libLLVM.so"
)


def _major_version(path: str) -> int | None:
    name = os.path.basename(path)
    match = re.search(r"libLLVM(?:-|\.so\.)(\d+)", name) or re.search(r"llvm-(\d+)", path)
    return int(match.group(1)) if match else None


def find_libllvm(min_major: int = MIN_LLVM_MAJOR) -> str | None:
    """Path of the newest libLLVM shared library with major version >= ``min_major``, or None."""
    dirs = list(_SEARCH_DIRS)
    if os.environ.get("CONDA_PREFIX"):
        dirs.insert(0, os.path.join(os.environ["CONDA_PREFIX"], "lib"))
    best: tuple[int, str] | None = None
    for pattern in dirs:
        for directory in glob.glob(pattern):
            for path in glob.glob(os.path.join(directory, "libLLVM*.so*")) + glob.glob(
                os.path.join(directory, "libLLVM*.dylib")
            ):
                major = _major_version(path)
                if major is not None and major >= min_major and (best is None or major > best[0]):
                    best = (major, path)
    return best[1] if best else None


def configure_libllvm() -> None:
    """Sets ``DRJIT_LIBLLVM_PATH`` to a libLLVM >= 17 if the user has not and Dr.Jit is not yet
    imported (afterwards the library is already chosen)."""
    if "DRJIT_LIBLLVM_PATH" in os.environ or "drjit" in sys.modules:
        return
    path = find_libllvm()
    if path is not None:
        os.environ["DRJIT_LIBLLVM_PATH"] = path


def check_libllvm() -> tuple[int, int, int]:
    """Returns the libLLVM version Dr.Jit loaded; raises ``RuntimeError`` if it is too old."""
    import drjit as dr

    version = dr.detail.llvm_version()
    if version is None or version[0] < MIN_LLVM_MAJOR:
        found = "none" if version is None else ".".join(map(str, version))
        raise RuntimeError(
            f"Mitsuba's CPU renderer needs libLLVM >= {MIN_LLVM_MAJOR} but Dr.Jit loaded {found}; "
            + INSTALL_HINT
        )
    return tuple(version)
