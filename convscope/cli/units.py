"""``convscope units``: every channel's top-k patches over a folder or video, units.json and HTML pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convscope.cli.common import add_command, add_model_options, count_arg, load_model_from_args
from convscope.errors import InputError, UsageError
from convscope.scale.options import add_ray_options


def _channels(text: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected channels such as 0-15,32, got {text!r}") from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"bad channel range {part!r}")
        out.extend(range(a, b + 1))
    if not out:
        raise argparse.ArgumentTypeError("no channels given")
    return tuple(sorted(set(out)))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "units", "top-k patches of every channel over a folder or video: units.json and HTML pages",
        description="For every channel of the chosen layers, find the k items (and positions) that excite it "
        "most over a folder of images or a video, cut their receptive-field patches from the source images, and "
        "write units.json, one static HTML page per layer (open it from disk) and index.html into OUTDIR. "
        "Interrupted runs resume: rerun the same command. With --ray the same work runs on a Ray cluster (workers "
        "send each batch's per-channel maxima, the driver merges them in listing order): the same units.json "
        "and pages.",
    )
    p.add_argument("-i", "--input", required=True, metavar="INPUT", help="a folder of images (recursive) or a video")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created when missing)")
    p.add_argument("--layer", action="append", default=[], metavar="L",
                   help="a layer to explore (repeatable; default: the model's default layer)")
    p.add_argument("--top-k", type=count_arg, default=9, metavar="K", help="patches per channel (default: 9)")
    p.add_argument("--channels", type=_channels, metavar="LIST", help="only these channels, e.g. 0-31,64")
    p.add_argument("--batch-size", type=count_arg, default=8, metavar="N", help="images per forward (default: 8)")
    p.add_argument("--every", type=count_arg, default=1, metavar="N", help="videos: every N-th frame (default: 1)")
    p.add_argument("--vis", action="store_true", help="add each unit's feature visualisation (slow on a CPU)")
    p.add_argument("--vis-steps", type=count_arg, default=128, metavar="N",
                   help="optimisation steps per visualisation (default: 128)")
    p.add_argument("--vis-size", type=count_arg, default=128, metavar="PX", help="visualisation size (default: 128)")
    p.add_argument("--restart", action="store_true", help="discard the saved state of an earlier run in OUTDIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_model_options(p)
    add_ray_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.ray is not None:  # only --ray runs import Ray
        from convscope.scale.units import run as run_on_ray

        return run_on_ray(args)
    from convscope.units.dataset import UnitsOptions, UnitsRun

    if args.vis_size < 16:
        raise UsageError(f"--vis-size must be 16 or more, got {args.vis_size}")
    opts = UnitsOptions(layers=tuple(args.layer), top_k=args.top_k, batch_size=args.batch_size, every=args.every,
                        channels=args.channels, vis=args.vis, vis_steps=args.vis_steps, vis_size=args.vis_size,
                        restart=args.restart)
    if not Path(args.input).expanduser().exists():  # before the model loads
        raise InputError(f"input not found: {args.input}")
    bundle = load_model_from_args(args)
    units = UnitsRun(bundle, args.input, args.output, opts, progress=False if args.quiet else None)
    if not args.quiet:
        for name, rf in units.rfs.items():
            how = rf.method + (f" ({rf.note})" if rf.note else "")
            print(f"convscope: {name}: receptive field {rf.size[0]:g}x{rf.size[1]:g} px, stride {rf.stride[0]:g}, "
                  f"by {how}", file=sys.stderr)
    doc = units.run()
    if not args.quiet:
        print_summary(units, doc, args.output)
    return 0


def print_summary(units, doc: dict, output: str) -> None:
    """What a run wrote, computed and reused, and every file it could not read (local or on Ray)."""
    s = units.stats
    print(f"wrote {output}/units.json and {len(doc['layers'])} page(s) "
          f"({s.computed} item(s) computed, {s.reused} reused from the saved state)", file=sys.stderr)
    if s.skipped:
        print(f"warning: skipped {len(s.skipped)} unreadable file(s):", file=sys.stderr)
        for rel, reason in s.skipped:
            print(f"  {rel}: {reason}", file=sys.stderr)
