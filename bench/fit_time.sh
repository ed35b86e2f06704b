#!/usr/bin/env bash
# The whole default fit (python -m lit3d fit --config configs/mei3d_simple_cell.yaml), process
# start to exit, at two commits of this repository, alternated in one sitting: OLD, NEW, OLD,
# NEW, ... RUNS times each (default 3). Prints each run's wall time and final normalized
# response, then min/median/max per commit; the last line is
#   fit_speedup=<OLD median / NEW median> target>=2
# and the exit status is 1 when the target is missed; the runs go into bench/results.json under
# fit_time. Each commit runs from its own git worktree
# (removed afterwards) with the current interpreter ($PYTHON, default python).
#
#   bash bench/fit_time.sh OLD NEW [RUNS]
set -euo pipefail
OLD=${1:?usage: bench/fit_time.sh OLD NEW [RUNS]}
NEW=${2:?usage: bench/fit_time.sh OLD NEW [RUNS]}
RUNS=${3:-3}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
cleanup() {
  git -C "$ROOT" worktree remove --force "$WORK/old" 2>/dev/null || true
  git -C "$ROOT" worktree remove --force "$WORK/new" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
git -C "$ROOT" worktree add --detach -q "$WORK/old" "$OLD"
git -C "$ROOT" worktree add --detach -q "$WORK/new" "$NEW"

fit() {  # fit <worktree> <run dir>: prints "<seconds> <normalized response>"
  local start end
  start=$(date +%s.%N)
  (cd "$1" && "$PYTHON" -m lit3d fit --config configs/mei3d_simple_cell.yaml \
      --trainer.logger.init_args.save_dir "$2" --trainer.enable_progress_bar false \
      > "$2.log" 2>&1)
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $(tail -n 1 "$2.log" | sed -n 's/^normalized_response=\([0-9.]*\).*/\1/p')"
}

for i in $(seq 1 "$RUNS"); do
  for side in old new; do
    read -r seconds response < <(fit "$WORK/$side" "$WORK/runs_${side}_$i")
    echo "$side run $i: ${seconds} s, normalized_response=${response}"
    echo "$seconds $response" >> "$WORK/$side.times"
  done
done

"$PYTHON" - "$WORK" "$OLD" "$NEW" "$ROOT/bench/results.json" <<'EOF'
import json, os, platform, statistics, sys
work, old, new, results = sys.argv[1:]
stats, record = {}, {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
for side, rev in (("old", old), ("new", new)):
    runs = [line.split() for line in open(f"{work}/{side}.times")]
    times = [float(r[0]) for r in runs]
    responses = [float(r[1]) for r in runs if len(r) > 1]
    stats[side] = statistics.median(times)
    print(f"{side} ({rev}): min {min(times):.1f} s, median {stats[side]:.1f} s, "
          f"max {max(times):.1f} s")
    record[side] = {"commit": rev, "seconds": [round(t, 1) for t in times],
                    "median_s": round(stats[side], 1), "normalized_responses": responses}
speedup = stats["old"] / stats["new"]
record.update(speedup=round(speedup, 2), target=2.0)
data = json.load(open(results)) if os.path.exists(results) else {}
data["fit_time"] = record
with open(results, "w") as f:
    f.write(json.dumps(data, indent=2) + "\n")
print(f"fit_speedup={speedup:.2f} target>=2")
sys.exit(0 if speedup >= 2 else 1)
EOF
