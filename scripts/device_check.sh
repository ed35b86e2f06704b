#!/usr/bin/env bash
# The GPU check, in one run: installs the wheels in .whl/ (scripts/device_wheels.sh), runs the
# CUDA tests (pytest -m gpu), the step breakdown on CUDA (P1, P4), the population benchmark
# with 16 neurons (P3) and a dragon-sized MRD run (bench/dragon_step.py), and writes
# summary.json, the logs and bench/results.json into OUT. Each part has its own time limit so
# that one hang cannot take the rest (about 8 minutes in all at most).
# Usage: bash scripts/device_check.sh OUT        Environment: PYTHON (default: python3).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash scripts/device_check.sh OUT}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 LIT3D_CACHE=/tmp/lit3d-cache
site=/tmp/lit3d-site
scratch=$(mktemp -d)  # at most 8 files come back from OUT: the bookkeeping stays here
start=$(date +%s)

"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl >"$OUT/install.log" 2>&1
install_rc=$?
export PYTHONPATH="$site:$PWD:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$scratch/gpu.txt" 2>&1

part() {  # part NAME LIMIT_S COMMAND...: runs COMMAND with a time limit into OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local t0=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "\"$name\": {\"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}," >>"$scratch/parts.txt"
    echo "device_check: $name exit $rc ($(( $(date +%s) - t0 )) s)"
}
: >"$scratch/parts.txt"
if [[ $install_rc -ne 0 ]]; then
    echo "device_check: installing the wheels failed; see install.log"; tail -5 "$OUT/install.log"
else
    part pytest_gpu 210 "$PYTHON" -m pytest -m gpu -v -s -p no:cacheprovider tests/test_gpu.py
    part step_breakdown 120 "$PYTHON" bench/step_breakdown.py --devices cuda --repeats 10 \
        --warmup 3 --configs mei3d_simple_cell mei3d_v4 mrd_demo mei3d_p4
    part population 60 "$PYTHON" bench/population.py --device cuda --neurons 16 --steps 5 \
        --warmup 2 --quality-neurons 0
    part dragon 90 "$PYTHON" bench/dragon_step.py --device cuda --steps 20
fi
cp bench/results.json "$OUT/results.json" 2>/dev/null
"$PYTHON" - "$OUT" "$scratch" "$install_rc" "$(( $(date +%s) - start ))" <<'PY'
import json, pathlib, sys
out, scratch = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
install_rc, seconds = int(sys.argv[3]), int(sys.argv[4])
parts = json.loads("{" + (scratch / "parts.txt").read_text().rstrip().rstrip(",") + "}")
results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
log = (out / "pytest_gpu.log").read_text() if (out / "pytest_gpu.log").exists() else ""
summary = {"install_rc": install_rc, "seconds": seconds, "parts": parts,
           "gpu": (scratch / "gpu.txt").read_text().strip(),
           "pytest_gpu": log.strip().splitlines()[-1:] if log else None,
           **{k: results.get(k) for k in ("P1_overhead", "P4_step_s", "P3_population_cuda",
                                          "dragon_sized")}}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
PY
(out_files=$(ls "$OUT" | wc -l); echo "device_check: $out_files files in $OUT")
