"""Replay issue 18's first attack: more idle TCP connections than the server has file descriptors.

Starts ``convscope live`` under ``ulimit -n LIMIT`` (soft and hard, so the server cannot raise
it), opens N connections that never send a byte, then connects a real viewer and times its
first frame; samples the server's open files and log size while the idle sockets are held.

    .venv/bin/python benchmarks/idle_flood.py --limit 1024 --sockets 1100
    .venv/bin/python benchmarks/idle_flood.py --limit 1024 --sockets 1100 -- --handshake-timeout 3
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from rel_helpers import LiveRun, next_frame, viewer  # noqa: E402


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1:], argv[: argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=1024, help="the server's open-files limit (ulimit -n)")
    ap.add_argument("--sockets", type=int, default=1100, help="idle connections to open")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds to hold them after the viewer connected")
    args = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.sockets + 256)), hard))

    live = LiveRun(*extra, folder=Path(tempfile.mkdtemp(prefix="convscope-flood-")), nofile=(args.limit, args.limit))
    try:
        print(f"server up under ulimit -n {args.limit}: {live.fds()} fds, RSS {live.rss() / 1e6:.0f} MB")
        held = []
        t0 = time.monotonic()
        for _ in range(args.sockets):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", live.port))
                held.append(s)
            except OSError:
                s.close()
        print(f"opened {len(held)} idle connections in {time.monotonic() - t0:.1f} s; server fds {live.fds()}")
        t0 = time.monotonic()
        with viewer(live.ws_url) as ws:
            next_frame(ws, timeout=60)
            print(f"a viewer got its first frame {time.monotonic() - t0:.2f} s later; server fds {live.fds()}")
        for k in range(int(args.hold // 5)):
            time.sleep(5)
            print(f"+{5 * (k + 1):3d} s: server fds {live.fds()}, log {len(live.stderr())} bytes")
        for s in held:
            s.close()
        seconds = live.signal(15)
        print(f"SIGTERM: exit status {live.proc.returncode} after {seconds:.2f} s")
        print("server log:\n" + live.stderr())
    finally:
        live.stop()


if __name__ == "__main__":
    main()
