"""Soak test: ``convscope live`` for N minutes with M viewers clicking; RSS and open files sampled.

Starts a real ``convscope live`` (127.0.0.1, any free port), connects M WebSocket viewers that
acknowledge every frame (as the page does) and each send a random selection (layer, channel,
neuron, pinned class, algorithms, pause) every ``--click-every`` seconds, a few of them
reconnecting now and then. Every ``--sample`` seconds it records the server's RSS, open file
descriptors and threads. After a warm-up (the first fifth, at least 30 s) it fits a straight
line through the samples and reports the slopes: a leak shows as a steady positive slope, noise
as a slope near zero with a spread. At the end it stops the server with SIGTERM and reports how
long that took and the exit status.

    .venv/bin/python benchmarks/soak.py --minutes 5 --viewers 4
    .venv/bin/python benchmarks/soak.py --minutes 1 --viewers 8 --tiny      # the test suite's tiny CNN
    .venv/bin/python benchmarks/soak.py --minutes 10 -- --source clip.mp4 --loop -m resnet50

Extra arguments after ``--`` go to ``convscope live``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import websockets.sync.client as wsclient

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"convscope: serving on http://127\.0\.0\.1:(\d+)/(?:\?token=(\S+))?")


def start_server(extra: list[str], tiny: bool, folder: Path) -> tuple[subprocess.Popen, int, str, Path]:
    model = ["-m", "server_models:tiny_cnn", "--input-size", "64"] if tiny else []
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "server")])}
    out, err = folder / "live.out", folder / "live.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convscope", "live", "--port", "0", *model, *extra],
        stdout=open(out, "w"), stderr=open(err, "w"), env=env, cwd=ROOT,  # noqa: SIM115
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        m = URL_LINE.search(out.read_text())
        if m:
            return proc, int(m.group(1)), m.group(2) or "", err
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"convscope live did not start:\n{out.read_text()[-2000:]}\n{err.read_text()[-2000:]}")


class Viewer(threading.Thread):
    """Reads and acknowledges every frame, clicks now and then, reconnects now and then."""

    def __init__(self, url: str, seed: int, click_every: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.rng, self.click_every, self.stop = url, random.Random(seed), click_every, stop
        self.frames = self.clicks = self.errors = self.reconnects = 0
        self.failures: list[str] = []

    def run(self) -> None:
        first = True
        while not self.stop.is_set():
            if not first:
                self.reconnects += 1
            first = False
            try:
                self._session()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(1.0)

    def _session(self) -> None:
        with wsclient.connect(self.url, max_size=None, open_timeout=30) as ws:
            hello = None
            next_click = time.monotonic() + self.click_every
            session_end = time.monotonic() + self.rng.uniform(30, 120)  # then reconnect
            while not self.stop.is_set() and time.monotonic() < session_end:
                try:
                    msg = ws.recv(timeout=0.5)
                except TimeoutError:
                    msg = None
                if isinstance(msg, str):
                    data = json.loads(msg)
                    if data["type"] == "hello":
                        hello = data
                    elif data["type"] == "frame":
                        ws.send(json.dumps({"type": "ack", "seq": data["seq"]}))
                        self.frames += 1
                    elif data["type"] == "error":
                        self.errors += 1
                if hello is not None and time.monotonic() >= next_click:
                    ws.send(json.dumps(self._click(hello)))
                    self.clicks += 1
                    next_click = time.monotonic() + self.click_every

    def _click(self, hello: dict) -> dict:
        rng = self.rng
        r = rng.random()
        if r < 0.05:
            return {"type": "pause", "paused": rng.random() < 0.5}
        conv = rng.choice(hello["conv_layers"])
        if r < 0.5:
            return {"type": "view", "conv_layer": conv["name"], "channel": rng.randrange(conv["shape"][0])}
        if r < 0.7 and hello["linear_layers"]:
            fc = rng.choice(hello["linear_layers"])
            return {"type": "view", "fc_layer": fc["name"], "neuron": rng.randrange(fc["shape"][0])}
        if r < 0.85:
            return {"type": "view", "cam_class": rng.choice([None, rng.randrange(hello["num_classes"])])}
        names = [a["name"] for a in hello["algorithms"]]
        return {"type": "view", "algorithms": rng.sample(names, rng.randint(1, min(3, len(names))))}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    ts = [t for t, _ in points]
    ys = [y for _, y in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--viewers", type=int, default=4)
    ap.add_argument("--click-every", type=float, default=1.0, metavar="S")
    ap.add_argument("--sample", type=float, default=5.0, metavar="S", help="seconds between samples")
    ap.add_argument("--tiny", action="store_true", help="the test suite's tiny CNN instead of the default model")
    ap.add_argument("--json", metavar="FILE", help="write the samples and the summary here")
    args = ap.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="convscope-soak-"))
    proc, port, token, err_path = start_server(extra, args.tiny, folder)
    ps = psutil.Process(proc.pid)
    url = f"ws://127.0.0.1:{port}/ws" + (f"?token={token}" if token else "")
    stop = threading.Event()
    viewers = [Viewer(url, seed, args.click_every, stop) for seed in range(args.viewers)]
    for v in viewers:
        v.start()
    samples: list[dict] = []
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    print(f"soak: {args.minutes:g} min, {args.viewers} viewers clicking every {args.click_every:g} s, "
          f"server pid {proc.pid} {' '.join(extra)}", flush=True)
    print(f"{'t (s)':>7} {'RSS (MB)':>9} {'fds':>5} {'threads':>8} {'frames':>8} {'clicks':>7}", flush=True)
    while time.monotonic() < end and proc.poll() is None:
        t = time.monotonic() - t0
        s = {"t": round(t, 1), "rss_mb": ps.memory_info().rss / 1e6, "fds": ps.num_fds(),
             "threads": ps.num_threads(), "frames": sum(v.frames for v in viewers),
             "clicks": sum(v.clicks for v in viewers)}
        samples.append(s)
        print(f"{s['t']:7.0f} {s['rss_mb']:9.1f} {s['fds']:5d} {s['threads']:8d} {s['frames']:8d} {s['clicks']:7d}",
              flush=True)
        time.sleep(max(0.0, min(args.sample, end - time.monotonic())))
    stop.set()
    for v in viewers:
        v.join(5)
    alive = proc.poll() is None
    t_stop = time.monotonic()
    if alive:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    stop_s = time.monotonic() - t_stop
    warm = max(30.0, 0.2 * args.minutes * 60)
    steady = [s for s in samples if s["t"] >= warm] or samples
    rss_slope = slope([(s["t"] / 60, s["rss_mb"]) for s in steady])
    fd_slope = slope([(s["t"] / 60, s["fds"]) for s in steady])
    summary = {
        "minutes": args.minutes, "viewers": args.viewers, "server_alive_at_end": alive,
        "frames": sum(v.frames for v in viewers), "clicks": sum(v.clicks for v in viewers),
        "error_replies": sum(v.errors for v in viewers), "reconnects": sum(v.reconnects for v in viewers),
        "client_failures": sum(len(v.failures) for v in viewers),
        "rss_mb_first": round(steady[0]["rss_mb"], 1), "rss_mb_last": round(steady[-1]["rss_mb"], 1),
        "rss_mb_min": round(min(s["rss_mb"] for s in steady), 1), "rss_mb_max": round(max(s["rss_mb"] for s in steady), 1),
        "rss_slope_mb_per_min": round(rss_slope, 2), "fds_first": steady[0]["fds"], "fds_last": steady[-1]["fds"],
        "fd_slope_per_min": round(fd_slope, 2), "sigterm_exit_s": round(stop_s, 2), "exit_status": proc.returncode,
        "server_log_bytes": err_path.stat().st_size,
    }
    print(json.dumps(summary, indent=1))
    print(f"soak: RSS {summary['rss_mb_first']} -> {summary['rss_mb_last']} MB after warm-up "
          f"(slope {rss_slope:+.2f} MB/min), fds {summary['fds_first']} -> {summary['fds_last']} "
          f"(slope {fd_slope:+.2f}/min); SIGTERM stopped it in {stop_s:.2f} s, exit {proc.returncode}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))
    failures = [f for v in viewers for f in v.failures]
    if failures:
        print(f"client failures ({len(failures)}), first: {failures[0]}")


if __name__ == "__main__":
    main()
