"""Tools for the reliability tests: a real ``convscope live`` process and hostile clients.

Everything binds or connects to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
SERVER_TESTS = ROOT / "tests" / "server"
URL_LINE = re.compile(r"convscope: serving on http://127\.0\.0\.1:(\d+)/(?:\?token=(\S+))?")
TINY = ["-m", "server_models:tiny_cnn", "--input-size", "64"]


class LiveRun:
    """``python -m convscope live ARGS`` on a free loopback port, output captured in files.

    Args:
        args: extra flags (the tiny test model is used unless ``-m`` is among them).
        folder: where stdout/stderr go.
        nofile: ``(soft, hard)`` open-files limit for the server (``ulimit -n``).
    """

    def __init__(self, *args: str, folder: Path, nofile: tuple[int, int] | None = None,
                 start_timeout: float = 120.0) -> None:
        model = [] if "-m" in args else TINY
        cmd = [sys.executable, "-m", "convscope", "live", "--host", "127.0.0.1", "--port", "0", *model, *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(SERVER_TESTS)])}
        self.out_path = folder / "live.out"
        self.err_path = folder / "live.err"
        self._out = open(self.out_path, "w")  # noqa: SIM115 - closed in stop()
        self._err = open(self.err_path, "w")  # noqa: SIM115

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, env=env, cwd=ROOT,
                                     preexec_fn=limit)
        self.port = 0
        self.token = ""
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            m = URL_LINE.search(self.out_path.read_text())
            if m:
                self.port, self.token = int(m.group(1)), m.group(2) or ""
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if not self.port:
            self.stop()
            raise AssertionError(f"convscope live did not start (exit {self.proc.returncode}):\n"
                                 f"{self.out_path.read_text()[-2000:]}\n{self.err_path.read_text()[-2000:]}")
        self.ps = psutil.Process(self.proc.pid)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?token={self.token}"

    @property
    def ws_path(self) -> str:
        return f"/ws?token={self.token}"

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def fds(self) -> int:
        return self.ps.num_fds()

    def signal(self, sig: int, timeout: float = 30.0) -> float:
        """Send ``sig``; return the seconds until the process exited."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()
        self._err.close()


# ---------------------------------------------------------------------------- viewers


def viewer(url: str, **kwargs):
    """A well-behaved viewer: ``websockets`` sync client (read with :func:`next_frame`)."""
    import websockets.sync.client as wsclient

    return wsclient.connect(url, max_size=None, open_timeout=30, **kwargs)


def next_json(ws, kind: str, timeout: float = 30.0) -> dict:
    """Read until a JSON message of type ``kind``; acknowledge frames passed on the way."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind!r} message within {timeout} s")
        msg = ws.recv(timeout=left)
        if isinstance(msg, str):
            data = json.loads(msg)
            if data["type"] == kind:
                return data
            if data["type"] == "frame":
                ws.send(json.dumps({"type": "ack", "seq": data["seq"]}))


def next_frame(ws, timeout: float = 30.0) -> dict:
    """The next frame's header (its panels are read and acknowledged)."""
    meta = next_json(ws, "frame", timeout)
    ws.recv(timeout=timeout)  # the binary panels
    ws.send(json.dumps({"type": "ack", "seq": meta["seq"]}))
    return meta


class RawWebSocket:
    """A WebSocket client on a bare socket: it sends what it is told and reads only when asked.

    ``rcvbuf`` shrinks its receive buffer so that a client that never reads stalls the server's
    writes soon.
    """

    def __init__(self, port: int, path: str, rcvbuf: int | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # byte by byte: leave the frames that follow unread
            if not chunk:
                raise ConnectionError(f"handshake refused: {head!r}")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"handshake refused: {head!r}")

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    def send_frame(self, opcode: int, payload: bytes, length: int | None = None) -> None:
        """One masked frame; ``length`` may claim more than ``payload`` holds."""
        n = len(payload) if length is None else length
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 else _mask(payload, mask)
        self.sock.sendall(head + mask + body)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _mask(payload: bytes, mask: bytes) -> bytes:
    import numpy as np

    data = np.frombuffer(payload, dtype=np.uint8)
    key = np.resize(np.frombuffer(mask, dtype=np.uint8), data.size)
    return (data ^ key).tobytes()


class BlindAcker(threading.Thread):
    """Acknowledges every frame it might have been sent, and never reads: the worst viewer."""

    def __init__(self, raw: RawWebSocket, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.raw = raw
        self.every = every
        self.stop = threading.Event()
        self.failed: Exception | None = None

    def run(self) -> None:
        seq = 0
        while not self.stop.wait(self.every):
            try:
                self.raw.send_text(json.dumps({"type": "ack", "seq": seq}))
            except OSError as exc:  # the server dropped us
                self.failed = exc
                return
            seq += 50


def wait_for(condition, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())
