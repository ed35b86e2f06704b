#!/usr/bin/env bash
# Fetches, for a GPU machine without network (Python 3.12, x86-64, torch/lightning/torchmetrics/
# timm preinstalled), the wheels lit3d needs beyond those, into .whl/ (ignored by git), and
# strips Mitsuba and gpytoolbox of files lit3d never loads (scripts/strip_wheel.py) so that the
# repository and the wheels fit through a 64 MiB transfer. Then run scripts/device_check.sh there.
# Usage: bash scripts/device_wheels.sh
# Environment: PYTHON (default: python), TARGET_PYTHON (the GPU machine's Python, default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TARGET_PYTHON=${TARGET_PYTHON:-3.12}
WHEELS=(mitsuba==3.9.1 drjit==1.5.0 cholespy==2.2.0 gpytoolbox==0.3.8 trimesh==5.2.0
        jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0)
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
mkdir -p .whl
rm -f .whl/*.whl
for spec in "${WHEELS[@]}"; do
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PYTHON" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$raw" "$spec"
done
for wheel in "$raw"/*.whl; do
    "$PYTHON" scripts/strip_wheel.py "$wheel" ".whl/$(basename "$wheel")" >/dev/null
done
du -ch .whl/*.whl | tail -1 | sed 's/total/in .whl\//'
