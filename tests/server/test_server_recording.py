"""Recording the dashboard over /ws (issue 14, item 4): ``record`` start/stop writes an MP4 and a
GIF that decode (PyAV) with the expected frame count and size; "every frame" gives one output
frame per input frame, in order (checked against the engine's own input panel of each input
frame); the dashboard-rate clock follows wall time; bad messages get one line; the disk quota
refuses snapshots and recordings without deleting anything."""

from __future__ import annotations

import json
import time

import av
import numpy as np
import pytest
from server_helpers import BASE_URL, WS, Built, receive_frame, receive_json
from starlette.testclient import TestClient

from convscope.server.app import create_app
from convscope.server.dashboard import make_dashboard
from convscope.server.recording import Layout, Quota
from convscope.server.security import Guard
from convscope.sources.playback import VideoFrames, open_playback

SIZE = 32


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture
def file_dash(h264_mp4, tmp_path):
    built = Built()
    built.source.close()
    built.source = open_playback(str(h264_mp4))
    built.root = tmp_path / "rec"
    built.dashboard = make_dashboard(built.engine, built.source, Guard(None, True), snapshots=built.root)
    yield built
    built.close()


def _frame_at(ws, index: int, limit: int = 80) -> dict:
    for _ in range(limit):
        meta, _ = receive_frame(ws)
        if meta["source_frame"]["index"] == index:
            return meta
    raise AssertionError(f"no frame showing input frame {index}")


def test_every_frame_recording_has_one_output_frame_per_input_frame(file_dash, h264_mp4, monkeypatch):
    start_at, n = 40, 50
    draw = Layout.draw

    def slow_draw(self, result):  # a writer slower than the engine: stop must still keep every frame handed over
        time.sleep(0.25)
        return draw(self, result)

    monkeypatch.setattr(Layout, "draw", slow_draw)
    with TestClient(create_app(file_dash.dashboard), base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
        assert receive_json(ws, "hello")["recordings"]["every_frame"] is True
        ws.send_text(json.dumps({"type": "pause", "paused": True}))
        ws.send_text(json.dumps({"type": "view", "algorithms": ["gradcam"]}))
        ws.send_text(json.dumps({"type": "seek", "frame": start_at}))
        while True:  # the frame on screen is input frame 40 with Grad-CAM on
            meta, _ = receive_frame(ws)
            if meta["source_frame"]["index"] == start_at and "gradcam" in meta["maps"]:
                break
        ws.send_text(json.dumps({"type": "record", "action": "start", "panels": ["input", "gradcam"],
                                 "every_frame": True, "size": SIZE}))
        assert receive_json(ws, "recording")["active"] is True
        assert receive_json(ws, "playback")["every_frame"] is True  # the player computes every frame
        ws.send_text(json.dumps({"type": "pause", "paused": False}))
        last_shown = False
        while not last_shown:  # as the page: stop once the last frame is on screen
            msg = ws.receive()
            if msg.get("text") is None:
                continue
            data = json.loads(msg["text"])
            if data["type"] == "frame":
                ws.send_text(json.dumps({"type": "ack", "seq": data["seq"]}))
                last_shown = last_shown or data["source_frame"]["index"] == n - 1
        assert file_dash.dashboard.recorder.active.last_index < n - 1  # the slow writer is behind the screen
        ws.send_text(json.dumps({"type": "record", "action": "stop"}))
        done = receive_json(ws, "recorded")
        assert receive_json(ws, "playback")["every_frame"] is False  # the player's mode is restored
        for f in done["files"]:
            response = client.get(f["url"])
            assert response.status_code == 200 and len(response.content) == f["bytes"]
        assert client.get("/recordings/..%2Fx.mp4").status_code == 404
        assert client.get("/recordings/nope.gif").status_code == 404
    count = n - start_at
    width = 2 * SIZE + 4  # the model input and Grad-CAM are square: two tiles and the 4 px gap
    assert done["frames"] == count and (done["width"], done["height"]) == (width, SIZE)
    assert done["panels"] == ["input", "map:gradcam"] and done["fps"] == 25
    assert done["input_frames"] == [[start_at, n - 1]]
    paths = {f["format"]: file_dash.root / f["name"] for f in done["files"]}
    assert set(paths) == {"mp4", "gif"}
    with av.open(str(paths["mp4"])) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.video[0].average_rate == 25
    for fmt, path in paths.items():
        frames = decode(path)
        assert len(frames) == count, fmt
        assert all(f.shape == (SIZE, width, 3) for f in frames), fmt
    # output frame i shows input frame 40 + i: its input tile is closest to the engine's input panel of that frame
    source = VideoFrames(str(h264_mp4), "clip")
    request = file_dash.dashboard.pipeline.state.to_request()
    refs = []
    for k in range(start_at, n):
        result = file_dash.engine.run(source.get(k), request)
        refs.append(Layout(["input"], [result.input], SIZE, 1).draw(result).astype(float))
    source.close()
    for i, frame in enumerate(decode(paths["mp4"])):
        tile = frame[:, :SIZE].astype(float)
        errors = [np.abs(tile - ref[:, :SIZE]).mean() for ref in refs]
        assert int(np.argmin(errors)) == i, (i, errors)


def test_dashboard_rate_recording_follows_the_clock(file_dash):
    with TestClient(create_app(file_dash.dashboard), base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
        receive_frame(ws)
        ws.send_text(json.dumps({"type": "record", "action": "start", "fps": 10, "size": SIZE}))
        started = receive_json(ws, "recording")
        t0 = time.monotonic()
        ws.send_text(json.dumps({"type": "record", "action": "start"}))
        assert "already recording" in receive_json(ws, "error")["message"]
        while time.monotonic() - t0 < 1.5:
            receive_frame(ws)
        ws.send_text(json.dumps({"type": "record", "action": "stop"}))
        done = receive_json(ws, "recorded")
        elapsed = time.monotonic() - t0
        _ = client
    assert started["active"] and not started["every_frame"]
    assert [f["format"] for f in done["files"]] == ["mp4", "gif"]
    frames = decode(file_dash.root / done["files"][1]["name"])
    assert len(frames) == done["frames"] == len(decode(file_dash.root / done["files"][0]["name"]))
    with av.open(str(file_dash.root / done["files"][0]["name"])) as c:  # repeated pictures keep the clock
        assert float(c.duration / 1e6) == pytest.approx(done["frames"] / 10, abs=0.15)
    assert 10 * 1.3 <= len(frames) <= 10 * elapsed + 2  # 10 frames a second of wall time
    # the full composite: every picture panel, at most 4 a row
    panels = done["panels"]
    assert panels[:4] == ["input", "activations", "channel", "fc"] and len(panels) >= 5
    assert frames[0].shape[:2] == (done["height"], done["width"]) and done["height"] == 2 * SIZE + 4


HOSTILE = [
    ('{"type": "record"}', "action 'start' or 'stop'"),
    ('{"type": "record", "action": "go"}', "action 'start' or 'stop'"),
    ('{"type": "record", "action": "stop"}', "not recording"),
    ('{"type": "record", "action": "stop", "x": 1}', "unknown field"),
    ('{"type": "record", "action": "start", "fps": 0}', "fps must be"),
    ('{"type": "record", "action": "start", "fps": NaN}', "fps must be"),
    ('{"type": "record", "action": "start", "size": 4000}', "size must be"),
    ('{"type": "record", "action": "start", "panels": []}', "panels must be"),
    ('{"type": "record", "action": "start", "panels": ["nope"]}', "unknown panel"),
    ('{"type": "record", "action": "start", "formats": ["avi"]}', "formats must be"),
    ('{"type": "record", "action": "start", "every_frame": 1}', "true or false"),
]


def test_bad_record_messages_get_one_line_and_live_sources_have_no_every_frame(tmp_path):
    built = Built()
    try:
        dash = make_dashboard(built.engine, built.source, Guard(None, True), snapshots=tmp_path)
        with TestClient(create_app(dash), base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
            for raw, reason in HOSTILE + [('{"type": "record", "action": "start", "every_frame": true}', "file or folder")]:
                ws.send_text(raw)
                error = receive_json(ws, "error")
                assert reason in error["message"] and "\n" not in error["message"], (raw, error)
                assert dash.recorder.active is None
            receive_frame(ws)  # the connection goes on
            _ = client
        assert list(tmp_path.iterdir()) == []
    finally:
        built.close()


def test_record_refused_without_a_folder(client):
    with client.websocket_connect(WS) as ws:
        assert receive_json(ws, "hello")["recordings"] is None
        for action in ("start", "stop"):
            ws.send_text(json.dumps({"type": "record", "action": action}))
            assert "--recordings" in receive_json(ws, "error")["message"]


def test_quota_refuses_snapshots_and_recordings_and_deletes_nothing(tmp_path):
    (tmp_path / "mine.bin").write_bytes(b"x" * 60_000)
    assert Quota(0.1, tmp_path).used() == 60_000
    Quota(0.1, tmp_path).check("snapshot")  # under 0.1 MB
    built = Built()
    try:
        dash = make_dashboard(built.engine, built.source, Guard(None, True), snapshots=tmp_path, quota_mb=0.05)
        with TestClient(create_app(dash), base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
            for msg in ({"type": "snapshot"}, {"type": "record", "action": "start"}):
                ws.send_text(json.dumps(msg))
                error = receive_json(ws, "error")["message"]
                assert "0.1 MB" in error and "--snapshots-max-mb" in error and "\n" not in error
            _ = client
    finally:
        built.close()
    assert [p.name for p in tmp_path.iterdir()] == ["mine.bin"]


def test_a_recording_that_reaches_the_quota_stops_and_keeps_its_files(tmp_path):
    built = Built()
    try:
        dash = make_dashboard(built.engine, built.source, Guard(None, True), snapshots=tmp_path, quota_mb=0.005)
        with TestClient(create_app(dash), base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
            ws.send_text(json.dumps({"type": "record", "action": "start", "fps": 30, "size": 224, "formats": ["gif"]}))
            while not receive_json(ws, "recording")["active"]:  # the one sent on connecting said "not recording"
                pass
            while True:  # 5 KB of GIF: the recorder stops itself (checked every 10 frames)
                state = receive_json(ws, "recording", limit=2000)
                if not state["active"]:
                    break
            ws.send_text(json.dumps({"type": "record", "action": "stop"}))
            assert "not recording" in receive_json(ws, "error")["message"]
            _ = client
    finally:
        built.close()
    assert "limit" in state["error"] and "--snapshots-max-mb" in state["error"] and "\n" not in state["error"]
    kept = tmp_path / state["last"]["files"][0]["name"]
    assert kept.stat().st_size >= 5_000 and state["last"]["frames"] >= 10
    with av.open(str(kept)) as container:  # closed properly: it decodes
        assert sum(1 for _ in container.decode(video=0)) == state["last"]["frames"]
