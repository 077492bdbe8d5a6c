"""Reading the dashboard's WebSocket messages in tests."""

from __future__ import annotations

import json

from server_models import SPEC

from convscope.engine import Engine
from convscope.models import load_model
from convscope.server.dashboard import Dashboard, make_dashboard
from convscope.server.encode import unpack_message
from convscope.server.security import Guard
from convscope.sources import open_source

WS = "ws://127.0.0.1:8765/ws"
BASE_URL = "http://127.0.0.1:8765"


class Built:
    """A dashboard with the real engine on :mod:`server_models` and the real demo source."""

    def __init__(self, token: str | None = None, loopback: bool = True, source: str = "demo") -> None:
        self.bundle = load_model(SPEC, input_size=64, device="cpu")
        self.engine = Engine(self.bundle)
        self.source = open_source(source, realtime=True)
        self.dashboard: Dashboard = make_dashboard(self.engine, self.source, Guard(token, loopback))

    def close(self) -> None:
        self.source.close()
        self.engine.close()


def receive_json(ws, kind: str, limit: int = 200) -> dict:
    """Read messages until a JSON message of type ``kind`` arrives.

    Frames passed over on the way are acknowledged, as the page would, so the server keeps
    sending (it sends at most a window of unacknowledged frames).
    """
    for _ in range(limit):
        msg = ws.receive()
        if msg.get("text") is not None:
            data = json.loads(msg["text"])
            if data["type"] == kind:
                return data
            if data["type"] == "frame":
                ws.send_text(json.dumps({"type": "ack", "seq": data["seq"]}))
    raise AssertionError(f"no {kind!r} message in {limit} messages")


def receive_frame(ws, ack: bool = True, limit: int = 200) -> tuple[dict, dict[str, bytes]]:
    """Read until one whole frame (header + its binary message) has arrived; acknowledge it."""
    meta = receive_json(ws, "frame", limit)
    msg = ws.receive()
    assert msg.get("bytes") is not None, msg
    parts: dict[str, bytes] = {}
    for seq, name, payload in unpack_message(msg["bytes"]):
        assert seq == meta["seq"]
        parts[name] = payload
    assert [p["name"] for p in meta["panels"]] == list(parts)
    if ack:
        ws.send_text(json.dumps({"type": "ack", "seq": meta["seq"]}))
    return meta, parts
