"""SIGINT and SIGTERM stop the server cleanly within a second, even with stalled viewers (item 4)."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from rel_helpers import BlindAcker, RawWebSocket, next_frame, viewer, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_closes_everything_within_a_second(start_live, sig):
    live = start_live()
    stalled = [RawWebSocket(live.port, live.ws_path, rcvbuf=4096) for _ in range(10)]
    ackers = [BlindAcker(raw) for raw in stalled]
    for a in ackers:
        a.start()
    closed: dict = {}
    try:
        with viewer(live.ws_url) as ws:
            next_frame(ws, timeout=20)
            time.sleep(2.0)  # the stalled viewers' buffers fill up meanwhile

            def read_until_closed() -> None:
                try:
                    while True:
                        ws.recv(timeout=10)
                except Exception as exc:  # ConnectionClosed: what we wait for
                    closed["code"] = getattr(getattr(exc, "rcvd", None), "code", None)
                    closed["exc"] = type(exc).__name__

            reader = threading.Thread(target=read_until_closed, daemon=True)
            reader.start()
            seconds = live.signal(sig, timeout=30)
            reader.join(10)
    finally:
        for a in ackers:
            a.stop.set()
        for raw in stalled:
            raw.close()
    err = live.stderr()
    print(f"{signal.Signals(sig).name}: exited {seconds:.2f} s after the signal, rc {live.proc.returncode}")
    assert live.proc.returncode == 0, err[-2000:]
    assert seconds < 1.0, seconds  # the bound
    assert err.rstrip().endswith("convscope: stopped"), err[-2000:]
    assert "Traceback" not in err
    assert closed.get("code") in (1001, 1012), closed  # the reading viewer got a close frame


def test_a_viewer_that_acks_but_never_reads_is_dropped(start_live):
    live = start_live("--stall-timeout", "2")
    with viewer(live.ws_url) as ws:
        next_frame(ws, timeout=20)
        raw = RawWebSocket(live.port, live.ws_path, rcvbuf=4096)
        acker = BlindAcker(raw)
        acker.start()
        try:
            def viewers() -> int:
                return next_json_status(ws)["viewers"]

            assert wait_for(lambda: viewers() == 2, timeout=10)
            t0 = time.monotonic()
            assert wait_for(lambda: viewers() == 1, timeout=30, every=0.0)
            print(f"stalled viewer dropped {time.monotonic() - t0:.1f} s after it was seen")
            next_frame(ws, timeout=10)  # the good viewer goes on
        finally:
            acker.stop.set()
            raw.close()
    assert "dropped a viewer that accepted no data for 2 s" in live.stderr()


def next_json_status(ws) -> dict:
    from rel_helpers import next_json

    return next_json(ws, "status", timeout=10)
