#!/usr/bin/env bash
# The CPU figures for the README: network FPS, dashboard FPS and their ratio for the three
# reference models and two view sets, one `convscope bench` process per line (each one
# interleaves both loops on the same decoded frames), then the independent plain eager loop
# (benchmarks/plain_loop.py) whose FPS should agree with the bench's network FPS, then a long
# run that shows whether process memory stays flat.
#
#   benchmarks/bench_cpu.sh            # all figures, JSON lines in /tmp/convscope-bench/cpu-<date>.jsonl
#   SECONDS_PER_RUN=60 benchmarks/bench_cpu.sh
#   LONG_FRAMES=0 benchmarks/bench_cpu.sh   # skip the memory run
#   THREADS=1 benchmarks/bench_cpu.sh       # pin torch to one thread (a busy machine)
#
# Run it on a quiet machine: anything else using the cores skews both loops (the interleaving
# keeps the ratio fair, not the absolute FPS).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SECS=${SECONDS_PER_RUN:-40}
LONG_FRAMES=${LONG_FRAMES:-2000}
OUT=${OUT_DIR:-${TMPDIR:-/tmp}/convscope-bench}
mkdir -p "$OUT"
LOG="$OUT/cpu-$(date -u +%Y%m%dT%H%M%SZ).jsonl"

run() {  # echo the exact command, then append its JSON line to the log
  echo "+ convscope $*" >&2
  "$PY" -m convscope "$@" --json | tee -a "$LOG"
}

EXTRA=()
if [ -n "${THREADS:-}" ]; then EXTRA=(--threads "$THREADS"); fi
for spec in "resnet50 --weights random" "vgg16 --weights random" "efficientnet_lite0"; do
  # full as a fresh dashboard shows it (guided backprop of the Grad-CAM class: one guided backward
  # serves guided backprop and guided Grad-CAM), full with guided backprop of channel 0 of the
  # last conv layer (a second guided backward), activations only, and full with the engine on the
  # model as loaded (no BatchNorm folding, no channels_last) to show what those give
  for views in "full" "full --gb-source channel" "activations" "full --no-optimize"; do
    # shellcheck disable=SC2086
    run bench --device cpu -m $spec --views $views --seconds "$SECS" "${EXTRA[@]}"
  done
  echo "+ benchmarks/plain_loop.py -m $spec" >&2
  # shellcheck disable=SC2086
  "$PY" benchmarks/plain_loop.py --device cpu -m $spec --frames 40 ${THREADS:+--threads "$THREADS"} --json | tee -a "$LOG"
done

if [ "$LONG_FRAMES" -gt 0 ]; then
  run bench --device cpu -m efficientnet_lite0 --views full --frames "$LONG_FRAMES" --rounds 20 "${EXTRA[@]}"
fi

"$PY" benchmarks/table.py "$LOG"
echo "log: $LOG" >&2
