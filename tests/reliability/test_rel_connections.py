"""Idle sockets, slow handshakes and too many connections cannot lock viewers out (issue 18, item 1)."""

from __future__ import annotations

import socket
import time

import pytest
from rel_helpers import RawWebSocket, next_frame, viewer, wait_for

pytestmark = pytest.mark.slow

FD_LIMIT = (200, 300)  # the server's ulimit -n: soft 200, hard 300


def _idle_sockets(port: int, n: int) -> list[socket.socket]:
    """``n`` TCP connections that never send a byte (connects that fail are not retried)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        held.append(s)
    return held


def _closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(0.01)
    try:
        return s.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:  # reset
        return True


def test_idle_sockets_beyond_every_limit_do_not_lock_out_a_viewer(start_live, many_fds):
    live = start_live("--max-connections", "1000", "--handshake-timeout", "3", nofile=FD_LIMIT)
    # the soft limit was raised to the hard one, and the cap lowered to fit it
    assert live.ps.rlimit(__import__("psutil").RLIMIT_NOFILE) == (300, 300)
    assert "--max-connections lowered to 236" in live.stderr()
    held = _idle_sockets(live.port, 400)  # more than the cap and more than the fd limit
    try:
        t0 = time.monotonic()
        with viewer(live.ws_url) as ws:
            meta = next_frame(ws, timeout=10)
            waited = time.monotonic() - t0
        assert meta["seq"] >= 0
        assert waited < 10, waited
        assert live.fds() <= 300
        # the idle ones are closed once the handshake timeout passes
        assert wait_for(lambda: sum(_closed_by_peer(s) for s in held) >= len(held) - 5, timeout=15)
        with viewer(live.ws_url) as ws:  # and the server is fine afterwards
            next_frame(ws, timeout=10)
    finally:
        for s in held:
            s.close()
    err = live.stderr()
    assert "Traceback" not in err
    assert len(err) < 4000, err[-2000:]  # a few one-line notes, not a traceback per accept
    print(f"viewer got a frame {waited:.2f} s after 400 idle sockets; log {len(err)} bytes; "
          f"server fds {live.fds()}")


def test_slow_headers_are_cut_at_the_handshake_timeout(start_live):
    live = start_live("--handshake-timeout", "2")
    s = socket.create_connection(("127.0.0.1", live.port))
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 8:
            try:
                s.sendall(b"X-Slow: 1\r\n")  # a header line every 0.2 s, never the blank line
            except OSError:
                closed = True
                break
            if _closed_by_peer(s):
                closed = True
                break
            time.sleep(0.2)
        assert closed
        assert time.monotonic() - t0 < 2 + 2
    finally:
        s.close()


def test_beyond_the_cap_of_real_viewers_new_connections_get_503_at_once(start_live):
    live = start_live("--max-connections", "8")
    viewers = [RawWebSocket(live.port, live.ws_path) for _ in range(8)]
    try:
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert data.startswith(b"HTTP/1.1 503"), data
        assert time.monotonic() - t0 < 2
    finally:
        for v in viewers:
            v.close()
    # the viewers' places free up as they leave
    with viewer(live.ws_url) as ws:
        next_frame(ws, timeout=10)
    assert "connection cap (8) reached" in live.stderr()
