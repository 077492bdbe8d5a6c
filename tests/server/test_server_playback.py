"""Playback over /ws (issue 14, item 1): a file waits paused until the first viewer, every viewer
gets the shared ``playback`` state, ``seek``/``step``/``speed`` move the frame the dashboard
computes, and hostile playback messages get a one-line error. Live sources count ``skipped``
only while playing.
"""

from __future__ import annotations

import json
import time

import pytest
from server_helpers import BASE_URL, WS, Built, receive_frame, receive_json
from starlette.testclient import TestClient

from convscope.server.app import create_app
from convscope.server.dashboard import make_dashboard
from convscope.server.security import Guard
from convscope.sources.playback import open_playback

N = 50


@pytest.fixture
def file_dash(h264_mp4):
    built = Built()  # the tiny model; its demo source is replaced by a player on the clip
    built.source.close()
    built.source = open_playback(str(h264_mp4))
    built.dashboard = make_dashboard(built.engine, built.source, Guard(None, True))
    yield built
    built.close()


def _frame_at(ws, index: int, limit: int = 60) -> dict:
    for _ in range(limit):
        meta, _ = receive_frame(ws)
        if meta["source_frame"]["index"] == index:
            return meta
    raise AssertionError(f"no frame showing input frame {index}")


def test_playback_messages_move_the_computed_frame(file_dash):
    player = file_dash.source
    pipeline = file_dash.dashboard.pipeline
    with TestClient(create_app(file_dash.dashboard), base_url=BASE_URL) as client:
        time.sleep(0.3)
        assert player.paused and player.describe()["position"] == 0  # nobody watches yet
        with client.websocket_connect(WS) as ws:
            hello = receive_json(ws, "hello")
            assert hello["playback"]["count"] == N and hello["source"]["live"] is False
            playback = receive_json(ws, "playback")
            assert playback["playing"] is True  # the first viewer started it
            ws.send_text(json.dumps({"type": "pause", "paused": True}))
            while receive_json(ws, "playback")["playing"]:
                pass
            ws.send_text(json.dumps({"type": "seek", "frame": 40}))
            meta = _frame_at(ws, 40)
            assert meta["source_frame"]["time"] == pytest.approx(1.6)
            ws.send_text(json.dumps({"type": "step", "by": -1}))
            _frame_at(ws, 39)
            ws.send_text(json.dumps({"type": "step", "by": 1}))
            _frame_at(ws, 40)
            ws.send_text(json.dumps({"type": "speed", "every_frame": True}))
            start = len(pipeline.computed)
            ws.send_text(json.dumps({"type": "pause", "paused": False}))
            state = receive_json(ws, "playback")
            while not state["ended"]:
                state = receive_json(ws, "playback")
            computed = list(pipeline.computed)[start:]
            assert computed[computed.index(41):] == list(range(41, N))  # each frame computed in turn
            assert state["position"] == N - 1 and not state["playing"]
            assert receive_json(ws, "state")["paused"] is True  # the play button shows play (replay)
            ws.send_text(json.dumps({"type": "pause", "paused": False}))  # replay
            _frame_at(ws, 0)
            ws.send_text(json.dumps({"type": "speed", "speed": 0.25, "every_frame": False}))
            state = receive_json(ws, "playback")
            while state["speed"] != 0.25:
                state = receive_json(ws, "playback")
            assert state["every_frame"] is False
            assert pipeline.stats()["skipped"] == 0 and pipeline.stats()["live"] is False


HOSTILE = [
    ('{"type": "seek", "frame": 50}', "out of range"),
    ('{"type": "seek", "frame": -1}', "out of range"),
    ('{"type": "seek", "frame": "3"}', "integer"),
    ('{"type": "seek"}', "integer"),
    ('{"type": "seek", "frame": 3, "at": 1}', "unknown field"),
    ('{"type": "step", "by": 0}', "non-zero"),
    ('{"type": "step", "by": 1e300}', "integer"),
    ('{"type": "speed", "speed": 8}', "0.25 to 4"),
    ('{"type": "speed", "speed": NaN}', "0.25 to 4"),
    ('{"type": "speed", "speed": 1e999}', "0.25 to 4"),
    ('{"type": "speed", "speed": true}', "0.25 to 4"),
    ('{"type": "speed", "every_frame": 1}', "true or false"),
    ('{"type": "speed"}', "needs speed"),
]


def test_hostile_playback_messages_get_one_line(file_dash):
    with TestClient(create_app(file_dash.dashboard), base_url=BASE_URL) as client, \
            client.websocket_connect(WS) as ws:
        for raw, reason in HOSTILE:
            before = file_dash.source.describe()
            ws.send_text(raw)
            error = receive_json(ws, "error")
            assert reason in error["message"] and "\n" not in error["message"], (raw, error)
            after = file_dash.source.describe()
            assert (after["speed"], after["every_frame"]) == (before["speed"], before["every_frame"])
        receive_frame(ws)  # the connection goes on


def test_live_source_refuses_seek_and_counts_skipped_only_while_playing(client, dashboard):
    pipeline = dashboard.pipeline
    with client.websocket_connect(WS) as ws:
        assert receive_json(ws, "hello")["playback"] is None
        ws.send_text(json.dumps({"type": "seek", "frame": 0}))
        assert "file or folder" in receive_json(ws, "error")["message"]
        ws.send_text(json.dumps({"type": "pause", "paused": True}))
        receive_json(ws, "state")
        skipped = pipeline.skipped()
        time.sleep(0.6)  # the demo keeps producing frames nobody wants
        assert pipeline.source.dropped > 0
        assert pipeline.skipped() == skipped
        assert receive_json(ws, "status")["skipped"] == skipped
