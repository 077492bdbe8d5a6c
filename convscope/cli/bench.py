"""``convscope bench``: dashboard FPS against bare-network FPS, on the same decoded frames."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from convscope import algorithms
from convscope.bench import VIEW_SETS, BenchConfig, run_bench
from convscope.bench.algorithms import bench_algorithms
from convscope.bench.frames import DEFAULT_COUNT, DEFAULT_SOURCE, decode_frames
from convscope.cli.common import add_command, add_model_options, load_model_from_args
from convscope.errors import UsageError
from convscope.stills.options import add_algorithm_options, algorithm_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "bench", "measure the dashboard's FPS against the bare network's",
        description="Decode frames once, then run a plain classification loop (preprocess, forward, "
        "top-1) and the live dashboard pipeline (engine, and encoding of every panel on an encoder thread "
        "as the server does) in interleaved "
        "rounds on the same frames. Prints both FPS (from median frame times), their ratio, "
        "per-stage medians and memory.",
    )
    p.add_argument("--source", default=DEFAULT_SOURCE, metavar="S",
                   help=f"where the frames come from, any source spec (default: {DEFAULT_SOURCE})")
    p.add_argument("--source-frames", type=int, default=DEFAULT_COUNT, metavar="N",
                   help=f"distinct frames decoded up front and cycled (default: {DEFAULT_COUNT})")
    p.add_argument("--views", choices=tuple(VIEW_SETS), default="full",
                   help="what the dashboard computes (default: full)")
    p.add_argument("--selection", "--gb-source", dest="selection", choices=("channel", "class"),
                   help="what the selection-role maps (guided backprop, saliency) explain (default: as in a freshly opened dashboard; 'class' "
                   "shares one guided backward with guided Grad-CAM, 'channel' (the selected channel of the "
                   "default layer) needs a second one)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, default=20.0, metavar="N",
                        help="timed seconds, both loops together (default: 20)")
    budget.add_argument("--frames", type=int, metavar="N", help="timed frames per loop, instead of --seconds")
    p.add_argument("--rounds", type=int, default=10, metavar="N",
                   help="how many times the loops take turns (default: 10)")
    p.add_argument("--warmup", type=int, default=3, metavar="N",
                   help="untimed frames per loop before timing (default: 3)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch intra-op threads for both loops (default: torch's choice)")
    p.add_argument("--inline-encode", action="store_true",
                   help="encode on the engine's thread after each frame, instead of on an encoder thread "
                   "overlapping the next frame as the live server does")
    p.add_argument("--sync-stages", action="store_true",
                   help="on CUDA, synchronise at every stage so stage times are exact (costs some FPS)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="run the dashboard's engine on the model as loaded, without folding BatchNorm into "
                   "the convs and without channels_last (to see what those give)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--algorithms", metavar="A,B,...|all",
                   help="instead: each algorithm's frame time alone as a multiple of a bare forward "
                   "(interleaved per frame, --rounds rounds over --source-frames frames); names: "
                   + ", ".join(algorithms.names()))
    add_algorithm_options(p)
    p.add_argument("--units", action="store_true",
                   help="measure instead what the unit explorer's live top-k update costs per frame, as a share of "
                   "the dashboard's frame (default layer, every channel; --frames N frames, default 60)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.source_frames < 1:
        raise UsageError(f"--source-frames must be at least 1, got {args.source_frames}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.algorithms:
        return _run_algorithms(args)
    config = BenchConfig(views=args.views, seconds=args.seconds, frames=args.frames,
                         rounds=args.rounds, warmup=args.warmup)
    frames = decode_frames(args.source, args.source_frames)
    bundle = load_model_from_args(args)
    if args.units:
        return _run_units(args, bundle, frames)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        report = run_bench(bundle, frames, config, source=args.source, sync_stages=args.sync_stages,
                           selection=args.selection, encode_thread=not args.inline_encode,
                           optimize=args.optimize)
    finally:
        torch.set_num_threads(threads)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.format_text())
    sys.stdout.flush()
    return 0


def _run_algorithms(args: argparse.Namespace) -> int:
    from convscope.cli.explain import parse_algorithms

    names = parse_algorithms(args.algorithms)
    frames = decode_frames(args.source, args.source_frames)
    bundle = load_model_from_args(args)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        costs = bench_algorithms(bundle, frames, names, rounds=args.rounds, warmup=args.warmup,
                                 options=algorithm_options(args), optimize=args.optimize)
    finally:
        torch.set_num_threads(threads)
    print(json.dumps(costs.as_dict()) if args.json else costs.format_text())
    sys.stdout.flush()
    return 0


def _run_units(args: argparse.Namespace, bundle, frames) -> int:
    from convscope.bench.units import run_units_bench

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        report = run_units_bench(bundle, frames, count=args.frames or 60, warmup=args.warmup)
    finally:
        torch.set_num_threads(threads)
    print(json.dumps(report.as_dict()) if args.json else report.format_text())
    sys.stdout.flush()
    return 0
