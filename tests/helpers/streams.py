"""Real stream servers on 127.0.0.1 for source tests.

- :class:`MjpegServer`: HTTP multipart MJPEG (what many IP cameras serve), in a thread; can be
  stopped and restarted on the same port, or stalled (connection open, no data).
- :class:`SilentServer`: a port that accepts connections and never answers.
- :class:`RtspServer`: GStreamer's RTSP server streaming an H.264 MP4, run as a separate process
  with the system Python (``python3-gi`` lives there, not in the venv); killed and restarted to
  simulate a camera that goes away and comes back.

This module imports only the standard library at top level, because the RTSP server runs it
as a script under ``/usr/bin/python3``: ``python3 streams.py rtsp --port P --file F``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_PATH = "/test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> bool:
    """True once something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class MjpegServer:
    """Serves ``jpegs`` in a loop as ``multipart/x-mixed-replace`` at ``fps`` on any path.

    Args:
        jpegs: encoded JPEG images, served in order, looping.
        fps: frames per second sent to each client.
        port: port to bind (0: pick a free one); reuse ``.port`` to restart on the same one.
    """

    boundary = "convscopeframe"

    def __init__(self, jpegs: list[bytes], fps: float = 25.0, port: int = 0) -> None:
        self.jpegs = jpegs
        self.fps = fps
        self.port = port
        self.stalled = threading.Event()  # set: keep connections open but send nothing
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with owner._lock:
                    owner._clients.add(self.connection)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={owner.boundary}")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    i = 0
                    while owner._httpd is not None:
                        if owner.stalled.is_set():
                            time.sleep(0.02)
                            continue
                        jpeg = owner.jpegs[i % len(owner.jpegs)]
                        self.wfile.write(
                            f"--{owner.boundary}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
                        )
                        self.wfile.flush()
                        i += 1
                        time.sleep(1.0 / owner.fps)
                except OSError:
                    pass
                finally:
                    with owner._lock:
                        owner._clients.discard(self.connection)

        self._httpd = _Server((HOST, self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (clients see the stream die)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            clients = list(self._clients)
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (a hung camera or proxy)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


class RtspServer:
    """GStreamer's RTSP server streaming an H.264 MP4 at ``rtsp://127.0.0.1:PORT/test``.

    Each client gets its own pipeline from the start of the file, paced in real time.

    Args:
        video: an MP4 with H.264 video, long enough for the test.
        port: port to serve on (default: a free one); restarts reuse it.
    """

    def __init__(self, video: Path, port: int | None = None) -> None:
        self.video = Path(video)
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}{RTSP_PATH}"

    def start(self, timeout: float = 30.0) -> RtspServer:
        cmd = [SYSTEM_PYTHON, str(Path(__file__).resolve()), "rtsp", "--port", str(self.port), "--file", str(self.video)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "READY" once the server is attached
        if line.strip() != "READY" or not wait_port(self.port, timeout):
            err = self._proc.stderr.read() if self._proc.poll() is not None and self._proc.stderr else ""
            self.kill()
            raise RuntimeError(f"RTSP test server did not start: {line.strip()} {err.strip()[-500:]}")
        return self

    def kill(self) -> None:
        """SIGKILL the server, as a crashed camera or a pulled cable would look."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _serve_rtsp(port: int, video: str) -> None:
    """Run under /usr/bin/python3: serve ``video`` over RTSP until killed."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = video.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(RTSP_PATH, factory)
    if server.attach(None) == 0:
        print(f"cannot bind port {port}", flush=True)
        raise SystemExit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="test stream servers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rtsp = sub.add_parser("rtsp", help="serve an H.264 MP4 over RTSP with GStreamer")
    rtsp.add_argument("--port", type=int, required=True)
    rtsp.add_argument("--file", required=True)
    args = parser.parse_args(argv)
    _serve_rtsp(args.port, args.file)


if __name__ == "__main__":
    sys.exit(main())
