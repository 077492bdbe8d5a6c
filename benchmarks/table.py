"""The README table from a benchmark log: one JSON object per line, as bench_cpu.sh / gpu.sh write.

    python benchmarks/table.py /tmp/convscope-bench/cpu-<date>.jsonl [--stages]

Rows with a ``ratio`` are ``convscope bench --json`` reports; rows with ``plain_fps`` come from
``benchmarks/plain_loop.py``; other lines are ignored.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--stages", action="store_true", help="also print each bench row's stage medians and memory")
    args = parser.parse_args()
    with open(args.log) as f:
        rows = [json.loads(line) for line in f if line.strip().startswith("{")]
    bench = [r for r in rows if "ratio" in r]
    print("| model | device | views | guided backprop of | engine | network FPS | dashboard FPS | ratio |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for r in bench:
        engine = "optimised" if "channels_last" in r.get("engine", "") else "as loaded"
        print(f"| {r['model']} | {r['device']} | {r['views']} | {r.get('selection', r.get('gb_source')) or '-'} | {engine} | "
              f"{r['network_fps']:.2f} | {r['dashboard_fps']:.2f} | {r['ratio']:.2f} |")
    for r in rows:
        if "plain_fps" in r:
            print(f"plain eager loop, {r['model']}: {r['plain_fps']:.2f} FPS")
    if args.stages:
        for r in bench:
            print(r["model"], r["views"], "stages ms:", r["stages"], "memory:", r.get("memory"))


if __name__ == "__main__":
    main()
