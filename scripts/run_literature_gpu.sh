#!/usr/bin/env bash
# The literature's window on one GPU (issue #16; docs/results.md, "On a GPU: five models x five seeds"):
# every cell of examples/sweeps/literature_gpu.toml and literature_gpu_null.toml in its own
# `effnet-trading sweep --only CELL` process, JOBS at a time, sharing the card (no Ray needed); the
# heaviest cells start first. Each process writes into the same --out (the sweep allows that), and a
# `--table-only` pass at the end writes each sweep's table.
#
#   scripts/run_literature_gpu.sh [OUT_PREFIX] [DEADLINE_S]
#
# OUT_PREFIX: runs/sweep_literature_gpu by default (the null cells go to OUT_PREFIX_null).
# DEADLINE_S: a cell still running after this many seconds is stopped; it is listed as not run yet,
# and re-running the script runs only the unfinished cells. EFFNET names the command
# (default: effnet-trading); GRID and NULLS name other configs with the same cell ids; SEEDS the seeds
# to start (default 0 1 2 3 4); JOBS the most cells at a time (default: the number of cores).
set -u
out=${1:-runs/sweep_literature_gpu}
deadline=${2:-7200}
effnet=${EFFNET:-effnet-trading}
jobs=${JOBS:-$(nproc)}
grid=${GRID:-examples/sweeps/literature_gpu.toml}
nulls=${NULLS:-examples/sweeps/literature_gpu_null.toml}
logs=$out.logs
mkdir -p "$logs"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1

start_cell() {  # toml out cell; at most $jobs at a time
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    timeout --signal=INT --kill-after=20 "$deadline" \
        $effnet sweep "$1" --out "$2" --no-ray --no-progress --only "$3" >"$logs/$3.log" 2>&1 &
}

for m in efficientnet_b5 efficientnet_b3; do
    for s in ${SEEDS:-0 1 2 3 4}; do start_cell "$grid" "$out" "models-${m}__seed-$s"; done
done
start_cell "$nulls" "${out}_null" "models-efficientnet_b5"
start_cell "$nulls" "${out}_null" "models-efficientnet_b3"
start_cell "$nulls" "${out}_null" "models-efficientnet_b0"
for m in efficientnet_b0 compact small_cnn; do
    for s in ${SEEDS:-0 1 2 3 4}; do start_cell "$grid" "$out" "models-${m}__seed-$s"; done
done
start_cell "$nulls" "${out}_null" "models-small_cnn"
wait
$effnet sweep "$grid" --out "$out" --table-only --no-progress >"$logs/table.log" 2>&1
$effnet sweep "$nulls" --out "${out}_null" --table-only --no-progress >>"$logs/table.log" 2>&1
tail -n 3 "$logs"/*.log
