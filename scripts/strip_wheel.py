"""Writes a copy of a wheel without the files lit3d never loads, so that the wheels a GPU
machine needs fit through a size-limited transfer (``scripts/device_wheels.sh``).

Mitsuba: keeps the variants ``cuda_ad_rgb``, ``llvm_ad_rgb`` and ``scalar_rgb`` (drops the
mono, spectral and polarized ones), drops the C++ headers, CMake and pkg-config files, the
type stubs and the spectral upsampling table ``data/srgb.coeff`` (read by spectral variants
only). gpytoolbox: drops the top-level duplicate of ``libwgpu_native.so`` (its bindings load
the copy in ``gpytoolbox.libs``). Other wheels are copied unchanged. ``RECORD`` loses the
dropped files' lines.

    python scripts/strip_wheel.py IN.whl OUT.whl
"""

from __future__ import annotations

import re
import sys
import zipfile

KEEP_VARIANTS = {"cuda_ad_rgb", "llvm_ad_rgb", "scalar_rgb"}
VARIANT = re.compile(r"^mitsuba/((?:scalar|llvm|cuda)_[a-z_]+)\.cpython")
DROPPED_PREFIXES = ("mitsuba/include/", "mitsuba/cmake/", "mitsuba/pkgconfig/",
                    "mitsuba/mitsuba_stubs/")
DROPPED_FILES = {"mitsuba/data/srgb.coeff", "libwgpu_native.so"}


def dropped(name: str) -> bool:
    """Whether the wheel member ``name`` is left out."""
    variant = VARIANT.match(name)
    if variant and variant.group(1) not in KEEP_VARIANTS:
        return True
    if name.startswith("mitsuba/") and name.endswith(".pyi"):
        return True
    return name.startswith(DROPPED_PREFIXES) or name in DROPPED_FILES


def strip_wheel(source: str, target: str) -> tuple[int, int]:
    """Copies ``source`` to ``target`` without the dropped members; returns (kept, dropped)."""
    kept = gone = 0
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if dropped(info.filename):
                gone += 1
                continue
            data = zin.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = [line for line in data.decode().splitlines()
                         if not dropped(line.split(",")[0])]
                data = ("\n".join(lines) + "\n").encode()
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
            kept += 1
    return kept, gone


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/strip_wheel.py IN.whl OUT.whl")
    kept, gone = strip_wheel(sys.argv[1], sys.argv[2])
    print(f"{sys.argv[2]}: kept {kept} files, dropped {gone}")
