"""A viewer that never reads must not make the server queue frames or slow the other viewers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import tracemalloc

import psutil
import pytest
import uvicorn
import websockets.sync.client as wsclient
from server_helpers import WS, Built, receive_frame, receive_json

from convscope.server.app import create_app
from convscope.server.encode import unpack_message
from convscope.server.hub import FRAMES_IN_FLIGHT


def _viewers(app):
    return sorted(app.state.hub.viewers, key=lambda v: v.frames_sent)


def test_stalled_viewer_holds_at_most_the_window_in_testclient(dashboard):
    from starlette.testclient import TestClient

    app = create_app(dashboard)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        with client.websocket_connect(WS) as slow, client.websocket_connect(WS) as fast:
            tracemalloc.start()
            try:
                for _ in range(10):
                    meta, _ = receive_frame(fast)
                first = meta["seq"]
                traced = []  # memory after each frame; its minimum over a stretch filters transients
                for _ in range(50):
                    meta, _ = receive_frame(fast)
                    traced.append(tracemalloc.get_traced_memory()[0])
            finally:
                tracemalloc.stop()
            frame_bytes = app.state.hub.latest.nbytes
            grown = min(traced[-10:]) - min(traced[:10])
            stalled, quick = _viewers(app)
            assert meta["seq"] - first >= 50  # the fast viewer kept getting new frames
            assert quick.frames_sent >= 60
            assert stalled.frames_sent <= FRAMES_IN_FLIGHT  # the slow one got the window, then nothing
            assert len(stalled.in_flight) == stalled.frames_sent
            assert app.state.hub.published >= 60
            # queuing for the stalled viewer would grow by a frame per frame: 40 frames over the stretch
            assert grown < 20 * frame_bytes, (grown, frame_bytes)
            del slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_stalled_tcp_viewer_does_not_slow_a_fast_one_over_real_sockets():
    built = Built()
    app = create_app(built.dashboard)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", ws_per_message_deflate=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{port}/ws"
        proc = psutil.Process()
        with wsclient.connect(url) as stalled, wsclient.connect(url, max_size=None) as fast:
            seqs = []
            rss = []
            meta = None
            while len(seqs) < 80:
                msg = fast.recv(timeout=30)
                if isinstance(msg, str):
                    data = json.loads(msg)
                    if data["type"] == "frame":
                        meta = data
                    continue
                panels = unpack_message(msg)
                seq = panels[0][0]
                assert meta is not None and seq == meta["seq"] and len(panels) == len(meta["panels"])
                fast.send(json.dumps({"type": "ack", "seq": seq}))
                seqs.append(seq)
                if len(seqs) in (20, 80):
                    rss.append(proc.memory_info().rss)
            viewers = sorted(app.state.hub.viewers, key=lambda v: v.frames_sent)
            assert viewers[0].frames_sent <= FRAMES_IN_FLIGHT
            assert viewers[1].frames_sent >= 80
            frame_bytes = app.state.hub.latest.nbytes
            assert rss[1] - rss[0] < max(32 << 20, 60 * frame_bytes), rss  # bounded, not growing per frame
            # the stalled viewer is still connected and gets its window once it reads
            got = [stalled.recv(timeout=10) for _ in range(4)]
            assert any(isinstance(m, str) and json.loads(m)["type"] == "hello" for m in got)
    finally:
        server.should_exit = True
        thread.join(10)
        built.close()
    assert not thread.is_alive()


def test_hub_publish_replaces_rather_than_queues():
    from convscope.server.encode import EncodedFrame
    from convscope.server.hub import Hub

    async def scenario():
        hub = Hub(window=1)
        viewer = hub.add()
        sent: list[str] = []

        async def send_text(text):
            sent.append(text)

        async def send_bytes(blob):
            sent.append(blob)

        task = asyncio.create_task(hub.serve(viewer, send_text, send_bytes))
        for seq in range(5):
            hub.publish(EncodedFrame(seq, {"type": "frame", "seq": seq, "panels": []}, (b"x",), 0.0))
        await asyncio.sleep(0.01)
        first = [json.loads(t)["seq"] for t in sent if isinstance(t, str)]
        for seq in range(5, 9):
            hub.publish(EncodedFrame(seq, {"type": "frame", "seq": seq, "panels": []}, (b"x",), 0.0))
        await asyncio.sleep(0.01)
        blocked = [json.loads(t)["seq"] for t in sent if isinstance(t, str)]
        viewer.ack(first[-1])
        await asyncio.sleep(0.01)
        after = [json.loads(t)["seq"] for t in sent if isinstance(t, str)]
        hub.remove(viewer)
        await asyncio.wait_for(task, 1)
        return first, blocked, after

    first, blocked, after = asyncio.run(scenario())
    assert len(first) == 1  # window of one: one frame sent, the rest replaced each other
    assert blocked == first  # nothing more until the ack
    assert after == first + [8]  # then the newest, not the ones in between


def test_state_and_status_reach_a_viewer_even_when_its_window_is_full(dashboard):
    from starlette.testclient import TestClient

    app = create_app(dashboard)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client, client.websocket_connect(WS) as ws:
        receive_frame(ws, ack=False)
        receive_frame(ws, ack=False)
        ws.send_text(json.dumps({"type": "view", "channel": 11}))
        state = receive_json(ws, "state")
        while state["channel"] != 11:
            state = receive_json(ws, "state")
        assert receive_json(ws, "status")["frames"] > 0
