"""``convscope probe SOURCE``: open a source, read it for a few seconds and report what arrived.

For users debugging a camera or a URL: shows the size, the nominal and measured frame rates,
drops and reconnects. Exits 0 when frames arrived (even if the stream dropped and came back).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from convscope.cli.common import add_command
from convscope.errors import SourceError

if TYPE_CHECKING:
    from convscope.sources import Source


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """``--open-timeout``, ``--read-timeout`` and ``--max-reconnects``, spelled the same everywhere."""
    g = parser.add_argument_group("source")
    g.add_argument("--open-timeout", type=_positive, default=10.0, metavar="S",
                   help="seconds a stream or webcam may take to open (default: 10)")
    g.add_argument("--read-timeout", type=_positive, default=10.0, metavar="S",
                   help="seconds without data before a stream counts as lost (default: 10)")
    g.add_argument("--max-reconnects", type=_count, default=None, metavar="N",
                   help="give up after N failed reconnects in a row (default: keep trying)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "probe", "open a source, read it for a few seconds and report what arrived",
        description="Open SOURCE (demo, a webcam number, a video or image file, a folder, a glob or "
        "a URL), read it for --seconds and print its kind, size, frame rates, drops and reconnects.",
    )
    p.add_argument("source", metavar="SOURCE", help="demo, 0, /dev/video0, video.mp4, rtsp://..., photos/ ...")
    p.add_argument("--seconds", type=_positive, default=5.0, metavar="N", help="how long to read (default: 5)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: kind, width, height, fps, live, frames, dropped, "
                   "reconnects, state (and spec, seconds, measured_fps, last_error, skipped)")
    add_source_options(p)
    p.set_defaults(func=run)


def read_for(source: Source, seconds: float) -> tuple[int, float]:
    """Read every frame for ``seconds`` (or until the source ends); return (frames, elapsed)."""
    start = time.monotonic()
    deadline = start + seconds
    frames = 0
    while (left := deadline - time.monotonic()) > 0:
        if source.read(timeout=min(left, 0.25)) is not None:
            frames += 1
        elif source.state.status == "ended":
            break
    return frames, time.monotonic() - start


def run(args: argparse.Namespace) -> int:
    opened = time.monotonic()
    from convscope.sources import open_source  # PyAV: imported only when a source is opened

    with open_source(
        args.source, realtime=False, open_timeout=args.open_timeout, read_timeout=args.read_timeout,
        max_reconnects=args.max_reconnects,
    ) as source:
        open_s = time.monotonic() - opened
        frames, elapsed = read_for(source, args.seconds)
        info, state = source.info, source.state
        report = {
            "kind": info.kind, "width": info.width, "height": info.height, "fps": round(info.fps, 3),
            "live": info.live, "frames": frames, "dropped": source.dropped, "reconnects": source.reconnects,
            "state": state.status, "spec": info.spec, "seconds": round(elapsed, 3),
            "measured_fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0,
            "open_seconds": round(open_s, 3), "last_error": state.last_error,
            "skipped": [{"path": p, "reason": r} for p, r in source.skipped],
        }
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    if frames == 0:
        detail = f": {state.last_error}" if state.last_error else ""
        raise SourceError(f"no frames arrived from {info.spec} in {elapsed:.1f} s (state {state.status}{detail})")
    return 0


def _print_report(r: dict) -> None:
    fps = f"{r['fps']:g} fps nominal" if r["fps"] else "fps unknown"
    rows = [
        ("source", r["spec"]),
        ("kind", f"{r['kind']} ({'live' if r['live'] else 'not live'})"),
        ("size", f"{r['width']}x{r['height']}, {fps}"),
        ("opened", f"in {r['open_seconds']:.2f} s"),
        ("read", f"{r['frames']} frames in {r['seconds']:.2f} s ({r['measured_fps']:g} fps)"),
        ("dropped", str(r["dropped"])),
        ("reconnects", str(r["reconnects"])),
        ("state", r["state"] + (f" (last error: {r['last_error']})" if r["last_error"] else "")),
    ]
    rows += [("skipped", f"{s['path']}: {s['reason']}") for s in r["skipped"]]
    for key, value in rows:
        print(f"{key:<11}{value}")
