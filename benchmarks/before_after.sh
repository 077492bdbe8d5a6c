#!/usr/bin/env bash
# An engine change's before/after table, measured side by side: the same `convscope bench` from
# two source trees, alternated run by run so both see the same machine load.
#
#   git worktree add --detach /tmp/before <commit>
#   benchmarks/before_after.sh /tmp/before .            # resnet50 and lite0, full and activations
#   REPS=3 SECS=15 MODELS="efficientnet_lite0" benchmarks/before_after.sh /tmp/before .
#
# Prints one JSON line per run (with "tree") and a median table at the end. Ratios only: the
# absolute FPS follow whatever else the machine is doing.
set -euo pipefail
BEFORE=$(cd "$1" && pwd); AFTER=$(cd "$2" && pwd)
PY=${PYTHON:-$AFTER/.venv/bin/python}
REPS=${REPS:-2}; SECS=${SECS:-8}; ROUNDS=${ROUNDS:-4}
MODELS=${MODELS:-"resnet50 efficientnet_lite0"}
VIEWS=${VIEWS:-"full activations"}
LOG=${LOG:-${TMPDIR:-/tmp}/convscope-before-after-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
for model in $MODELS; do
  weights=(); [ "$model" = efficientnet_lite0 ] || weights=(--weights random)
  for views in $VIEWS; do
    for rep in $(seq "$REPS"); do
      for tree in before after; do
        dir=$BEFORE; [ "$tree" = after ] && dir=$AFTER
        line=$(cd "$dir" && PYTHONPATH=$dir "$PY" -m convscope bench --device cpu -m "$model" "${weights[@]}" \
               --views "$views" --seconds "$SECS" --rounds "$ROUNDS" --json)
        echo "{\"tree\": \"$tree\", \"rep\": $rep, \"run\": $line}" | tee -a "$LOG"
      done
    done
  done
done
"$PY" - "$LOG" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["run"]["model"], r["run"]["views"]) for r in rows})
print("| model | views | ratio before | ratio after | after / before |")
print("|---|---|---:|---:|---:|")
for model, views in keys:
    med = {t: statistics.median(r["run"]["ratio"] for r in rows if r["tree"] == t and
                                (r["run"]["model"], r["run"]["views"]) == (model, views)) for t in ("before", "after")}
    print(f"| {model} | {views} | {med['before']:.3f} | {med['after']:.3f} | {med['after'] / med['before']:.2f} |")
PYEOF
