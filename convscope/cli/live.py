"""``convscope live``: the real-time dashboard, served to the browser.

One process: a source thread decoding frames, the engine thread computing every panel of the
newest frame, and an asyncio server fanning the encoded panels out to any number of tabs. All
tabs share one selection (one dashboard, many viewers).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import webbrowser
from pathlib import Path

from convscope.cli.common import add_command, add_model_options, count_arg, load_model_from_args
from convscope.cli.probe import add_source_options
from convscope.errors import UsageError

DEFAULT_PORT = 8765


class _LimitDefaults:
    """``server.limits.Limits``' defaults, without importing the server for ``--help``/other commands."""

    max_connections = 200
    handshake_timeout = 10.0
    stall_timeout = 20.0


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "live", "real-time dashboard in the browser",
        description="Serve the live dashboard: input, top-5, activations, FC map, Grad-CAM and guided "
        "backprop of a video, webcam or stream, in any browser. Binds 127.0.0.1 and requires a token "
        "unless told otherwise; all tabs share one selection.",
    )
    p.add_argument("-s", "--source", default="demo", metavar="S",
                   help="demo, a video file, webcam index (0), stream URL, image or folder (default: demo)")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                   help="start a file again at its end (default: on for the demo and live streams, off for files)")
    p.add_argument("--snapshots", default="convscope-snapshots", metavar="DIR",
                   help="folder the snapshot button (key s) writes to (default: ./convscope-snapshots/)")
    p.add_argument("--recordings", metavar="DIR",
                   help="folder the record button writes MP4 and GIF recordings to (default: the snapshots folder)")
    p.add_argument("--snapshots-max-mb", type=float, default=2000.0, metavar="MB",
                   help="refuse new snapshots and recordings (and stop a running one) once the snapshot and "
                   "recording folders hold MB megabytes; files are never deleted (default: 2000; 0 = no limit)")
    p.add_argument("--autoplay", action="store_true",
                   help="play a file or folder at once (default: it waits paused on its first frame until "
                   "the first viewer connects)")
    p.add_argument("--units", metavar="OUTDIR",
                   help="the unit explorer shows the dataset-wide top patches of a `convscope units` OUTDIR "
                   "(its units.json) for the layers it covers, instead of this session's")
    p.add_argument("--no-featvis", dest="featvis", action="store_false",
                   help="no feature visualisation of the selected unit in the background")
    add_model_options(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1; 0.0.0.0 exposes the dashboard to the network)")
    g.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 = any free port)")
    g.add_argument("--token", metavar="T", help="the token viewers must present (default: a random one, printed)")
    g.add_argument("--no-token", action="store_true", help="serve without a token (anyone who can reach the port sees it)")
    g.add_argument("--open", action="store_true", help="open the dashboard in the default browser")
    p.add_argument("--background-share", type=_share, default=0.2, metavar="F",
                   help="a map that needs extra input rows (Integrated Gradients, SmoothGrad, Score-CAM, "
                        "Ablation-CAM, augmentation smoothing) and would cost more than this share of a frame "
                        "runs in the background on the newest frame; its panel shows how many frames old it is "
                        "(default: 0.2; 0: always in the background)")
    p.add_argument("--no-background", dest="background", action="store_false",
                   help="compute every map every frame, however slow (the frame rate follows the slowest map)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="run the model as loaded, without folding BatchNorm into the convs and without "
                   "channels_last (the views are the same either way)")
    g.add_argument("--quality", type=int, default=80, metavar="Q", help="JPEG quality of the panels, 1-95 (default: 80)")
    d = _LimitDefaults
    g = p.add_argument_group("limits")
    g.add_argument("--max-connections", type=count_arg, default=d.max_connections, metavar="N",
                   help=f"open connections at most (viewers, page loads, handshakes; default: {d.max_connections}; "
                   "lowered to fit the open-files limit). Beyond it, connections that have not sent a request "
                   "are closed first, then new ones get 503")
    g.add_argument("--handshake-timeout", type=_seconds, default=d.handshake_timeout, metavar="S",
                   help=f"seconds a connection may take to send its request headers (default: {d.handshake_timeout:g})")
    g.add_argument("--stall-timeout", type=_seconds, default=d.stall_timeout, metavar="S",
                   help="drop a viewer whose connection accepts no data for S seconds "
                   f"(default: {d.stall_timeout:g})")
    from convscope.pixels import DEFAULT_MAX_PIXELS

    g.add_argument("--max-pixels", type=count_arg, default=None, metavar="N",
                   help="refuse images and video frames larger than N pixels, checked before decoding "
                   f"(default: {DEFAULT_MAX_PIXELS}, as Pillow's; also CONVSCOPE_MAX_PIXELS)")
    add_source_options(p)
    p.set_defaults(func=run)


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen now, so a busy port is reported before the model loads."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot bind --host {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _units_dir(value: str | None) -> Path | None:
    """``--units OUTDIR``: a folder with the ``units.json`` that ``convscope units`` writes."""
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not (path / "units.json").is_file():
        raise UsageError(f"--units {value}: no units.json there (write one with `convscope units -o {value}`)")
    try:
        layers = json.loads((path / "units.json").read_text()).get("layers")
    except (ValueError, OSError, AttributeError) as exc:
        raise UsageError(f"--units {value}: units.json cannot be read: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(layers, dict):
        raise UsageError(f"--units {value}: units.json has no 'layers' object")
    return path


def _urls(bound: str, port: int, token: str | None) -> list[str]:
    """The URL to print for a socket bound to address ``bound``, plus one for other machines."""
    query = f"?token={token}" if token else ""
    wildcard = bound in ("0.0.0.0", "::", "")
    local = ("::1" if ":" in bound else "127.0.0.1") if wildcard else bound
    local = f"[{local}]" if ":" in local else local
    urls = [f"http://{local}:{port}/{query}"]
    if wildcard:
        urls.append(f"http://{socket.gethostname()}:{port}/{query}")
    return urls


def run(args: argparse.Namespace) -> int:
    from convscope.engine import Engine
    from convscope.pixels import set_max_pixels
    from convscope.server.app import create_app
    from convscope.server.dashboard import make_dashboard
    from convscope.server.lanes import background_engine_factory
    from convscope.server.limits import Limits, LiveServer, fit_to_fd_limit, make_config, raise_fd_limit
    from convscope.server.security import Guard, choose_token, is_loopback
    from convscope.sources import open_source
    from convscope.sources.playback import open_playback

    if not 1 <= args.quality <= 95:
        raise UsageError(f"--quality must be between 1 and 95, got {args.quality}")
    token = choose_token(args.host, args.token, args.no_token)
    loopback = is_loopback(args.host)
    if args.max_pixels is not None:
        set_max_pixels(args.max_pixels)
    soft, _ = raise_fd_limit()
    cap = fit_to_fd_limit(args.max_connections, soft)
    if cap < args.max_connections:
        print(f"convscope: --max-connections lowered to {cap} to fit the open-files limit ({soft}; "
              "raise it with ulimit -n)", file=sys.stderr, flush=True)
    limits = Limits(max_connections=cap, handshake_timeout=args.handshake_timeout,
                    stall_timeout=args.stall_timeout)
    units_dir = _units_dir(args.units)
    sock = _bind(args.host, args.port)
    source = engine = None
    try:
        bundle = load_model_from_args(args)
        engine = Engine(bundle, optimize=args.optimize)
        print(f"convscope: {bundle.name}: {engine.optimization}", flush=True)
        # Files and folders get a seekable player (timeline, steps, speed); the rest plays live.
        source = open_playback(args.source, loop=args.loop, autoplay=args.autoplay)
        if source is None:
            source = open_source(args.source, realtime=True, loop=args.loop, open_timeout=args.open_timeout,
                                 read_timeout=args.read_timeout, max_reconnects=args.max_reconnects)
        bound, port = sock.getsockname()[:2]
        urls = _urls(bound, port, token)

        def announce() -> None:
            line = f"convscope: serving on {urls[0]}"
            if len(urls) > 1:
                line += f"  (from other machines: {urls[1]})"
            print(line, flush=True)
            if token is None and not loopback:
                print("convscope: warning: --no-token on a non-loopback address: anyone who can reach "
                      f"port {port} can watch and steer the dashboard", file=sys.stderr, flush=True)
            print("convscope: press Ctrl-C to stop", flush=True)
            if args.open:
                threading.Thread(target=webbrowser.open, args=(urls[0],), daemon=True).start()

        dash = make_dashboard(engine, source, Guard(token, loopback_only=loopback), quality=args.quality,
                              on_startup=announce, snapshots=Path(args.snapshots).resolve(),
                              recordings=Path(args.recordings).resolve() if args.recordings else None,
                              quota_mb=args.snapshots_max_mb,
                              background=background_engine_factory(bundle, optimize=args.optimize)
                              if args.background else None,
                              background_share=args.background_share,
                              units_dir=units_dir, featvis=args.featvis)
        server = LiveServer(make_config(create_app(dash), limits), limits)
        try:
            server.run(sockets=[sock])  # returns after Ctrl-C / SIGTERM, viewers closed
        except KeyboardInterrupt:
            pass  # a second Ctrl-C while stopping
    finally:
        if source is not None:
            source.close()
        if engine is not None:
            engine.close()
        sock.close()
    print("convscope: stopped", file=sys.stderr, flush=True)
    _exit_now(0)
    return 0


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown.

    Everything is closed by now (server, engine thread, source, hooks); what is left is Python
    finalising torch, timm and friends, which takes seconds on a busy machine and would break the
    promise that Ctrl-C stops the dashboard within two seconds.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
