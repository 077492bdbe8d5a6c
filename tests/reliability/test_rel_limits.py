"""The transport limits in-process, on a plain app: the cap's 503, quiet accept errors, fd limits."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from convscope.server.limits import (
    FD_RESERVE,
    Limits,
    LiveServer,
    RateLimitedLog,
    Tracker,
    fit_to_fd_limit,
    make_config,
    raise_fd_limit,
)


async def _page(request):
    return PlainTextResponse("ok")


async def _echo(ws):
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        await ws.send_text(msg.get("text") or "")


@pytest.fixture
def server():
    """``server(limits) -> (port, tracker)``: a plain app behind the guarded protocols, in a thread."""
    running = []

    def start(limits: Limits):
        app = Starlette(routes=[Route("/", _page), WebSocketRoute("/ws", _echo)])
        tracker = Tracker(limits)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        srv = LiveServer(make_config(app, limits, tracker, lifespan="off"), limits)
        thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        running.append((srv, thread))
        return sock.getsockname()[1], tracker

    yield start
    for srv, thread in running:
        srv.should_exit = True
        thread.join(5)


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def test_cap_evicts_idle_first_then_answers_503(server):
    import websockets.sync.client as wsclient

    port, tracker = server(Limits(max_connections=4, handshake_timeout=30))
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        time.sleep(0.2)
        assert _get(port).endswith(b"ok")  # an idle socket made room
        assert tracker.evicted >= 1
        views = [wsclient.connect(f"ws://127.0.0.1:{port}/ws", legacy=True) for _ in range(4)]  # evicts the rest
        try:
            t0 = time.monotonic()
            refused = _get(port)
            assert refused.startswith(b"HTTP/1.1 503"), refused
            assert time.monotonic() - t0 < 1.0
            assert tracker.refused == 1
            views[0].send("hi")
            assert views[0].recv(timeout=5) == "hi"  # the viewers were not touched
        finally:
            for v in views:
                v.close()
    finally:
        for s in idle:
            s.close()


def test_accept_errors_are_one_line_per_interval(caplog):
    note = RateLimitedLog(every=60)
    srv = LiveServer.__new__(LiveServer)
    srv.note = note
    loop = asyncio.new_event_loop()
    try:
        exc = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level(logging.WARNING, logger="convscope.server"):
            for _ in range(1000):
                srv._loop_exception(loop, {"message": "socket.accept() out of system resource", "exception": exc})
    finally:
        loop.close()
    lines = [r for r in caplog.records if r.name == "convscope.server"]
    assert len(lines) == 1 and "Too many open files" in lines[0].getMessage()
    assert not lines[0].exc_info
    assert note.total["accept"] == 1000


def test_fd_limit_helpers():
    soft, hard = raise_fd_limit()
    assert soft == hard or soft >= 65536
    assert fit_to_fd_limit(200, 1024) == 200
    assert fit_to_fd_limit(2000, 1024) == 1024 - FD_RESERVE
    assert fit_to_fd_limit(200, 30) == 8


def test_cli_defaults_match_the_limits():
    from convscope.cli.live import _LimitDefaults

    d = Limits()
    assert (d.max_connections, d.handshake_timeout, d.stall_timeout) == (
        _LimitDefaults.max_connections, _LimitDefaults.handshake_timeout, _LimitDefaults.stall_timeout)
