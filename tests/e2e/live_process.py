"""Run ``convscope live`` as a user would: a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

URL_LINE = re.compile(r"convscope: serving on (http://127\.0\.0\.1:(\d+)/\S*)")


class LiveProcess:
    """``convscope live ARGS --port 0``; :attr:`url` is the printed URL (token included)."""

    def __init__(self, *args: str, start_timeout: float = 180.0, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "convscope", "live", "--host", "127.0.0.1", "--port", "0", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=Path(__file__).resolve().parents[2])
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._found = threading.Event()
        self.url = ""
        self.port = 0
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, False), daemon=True).start()
        deadline = time.monotonic() + start_timeout
        while not self._found.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"convscope live did not start (exit {self.proc.returncode}):\n"
                    + "".join(self.stdout[-20:]) + "".join(self.stderr[-20:])
                )

    def _read(self, stream, sink: list[str], scan: bool) -> None:
        for line in stream:
            sink.append(line)
            if scan and not self._found.is_set():
                m = URL_LINE.search(line)
                if m:
                    self.url, self.port = m.group(1), int(m.group(2))
                    self._found.set()

    def interrupt(self, timeout: float = 30.0) -> float:
        """Send SIGINT (Ctrl-C); return the seconds until the process exited."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
