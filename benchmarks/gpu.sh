#!/usr/bin/env bash
# The GPU figures in one go, offline, well under 10 minutes on one H100/H200:
#   1. the GPU tests (pytest -m gpu), if any exist;
#   2. `convscope bench --device cuda --json` for resnet50, vgg16 and efficientnet_lite0
#      (random weights: nothing is downloaded), views full and activations;
#   3. the independent plain eager loop (benchmarks/plain_loop.py) per model, to check the
#      bench's network FPS;
#   4. resnet50 full with the engine on the model as loaded (--no-optimize), and what BatchNorm
#      folding and channels_last buy a bare forward and backward (benchmarks/fold_channels_last.py);
#   5. a memory run (efficientnet_lite0, full, many frames): RSS and CUDA memory start/end.
# Every JSON line goes to $OUT/gpu.jsonl (or /tmp/convscope-bench/gpu.jsonl), then a table.
#
#   benchmarks/gpu.sh                       # on the GPU machine, from the repository root
#   SECONDS_PER_RUN=20 LONG_FRAMES=3000 benchmarks/gpu.sh
#
# Python: $PYTHON, else .venv/bin/python if it exists, else python3. Wheels of missing packages
# (e.g. PyAV for video sources; the demo source needs none) are installed from .whl/ if present.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
SECS=${SECONDS_PER_RUN:-10}
LONG_FRAMES=${LONG_FRAMES:-2000}
DEST=${OUT:-${TMPDIR:-/tmp}/convscope-bench}
mkdir -p "$DEST"
LOG="$DEST/gpu.jsonl"
: >"$LOG"
status=0

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

echo "== GPU tests" >&2
if "$PY" -m pytest --markers -p no:cacheprovider 2>/dev/null | grep -q '^@pytest.mark.gpu'; then
  # modules that need what this machine lacks (e.g. PyAV) fail to import: not GPU tests, keep going
  timeout 240 "$PY" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors tests 2>&1 | tail -n 15
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi  # 5 = no GPU tests collected
else
  echo "no 'gpu' marker registered: no GPU tests to run" >&2
fi

run() {
  echo "+ convscope $*" >&2
  timeout 150 "$PY" -m convscope "$@" --json | tee -a "$LOG" || status=1
}

for model in resnet50 vgg16 efficientnet_lite0; do
  for views in "full" "full --gb-source channel" "activations"; do
    # shellcheck disable=SC2086
    run bench --device cuda -m "$model" --weights random --views $views --seconds "$SECS" --warmup 10
  done
  echo "+ benchmarks/plain_loop.py -m $model --weights random --device cuda" >&2
  timeout 120 "$PY" benchmarks/plain_loop.py -m "$model" --weights random --device cuda --frames 300 --warmup 20 --json \
    | tee -a "$LOG" || status=1
done
run bench --device cuda -m resnet50 --weights random --views full --seconds "$SECS" --warmup 10 --no-optimize
echo "+ benchmarks/fold_channels_last.py -m resnet50 --weights random --device cuda" >&2
timeout 120 "$PY" benchmarks/fold_channels_last.py -m resnet50 --weights random --device cuda --repeats 50 || status=1
# the same with every stage synchronised, for exact per-stage GPU times
run bench --device cuda -m resnet50 --weights random --views full --seconds "$SECS" --warmup 10 --sync-stages
if [ "$LONG_FRAMES" -gt 0 ]; then
  run bench --device cuda -m efficientnet_lite0 --weights random --views full --frames "$LONG_FRAMES" --rounds 20
fi

"$PY" benchmarks/table.py "$LOG" --stages
echo "log: $LOG" >&2
exit $status
