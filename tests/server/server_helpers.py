"""Reading the dashboard's WebSocket messages in tests."""

from __future__ import annotations

import json

from convscope.server.encode import unpack_blob

WS = "ws://127.0.0.1:8765/ws"


def receive_json(ws, kind: str, limit: int = 200) -> dict:
    """Read messages until a JSON message of type ``kind`` arrives (binary ones are skipped)."""
    for _ in range(limit):
        msg = ws.receive()
        if msg.get("text") is not None:
            data = json.loads(msg["text"])
            if data["type"] == kind:
                return data
    raise AssertionError(f"no {kind!r} message in {limit} messages")


def receive_frame(ws, ack: bool = True, limit: int = 200) -> tuple[dict, dict[str, bytes]]:
    """Read until one whole frame (header + its binary panels) has arrived; acknowledge it."""
    meta = receive_json(ws, "frame", limit)
    parts: dict[str, bytes] = {}
    while len(parts) < len(meta["panels"]):
        msg = ws.receive()
        if msg.get("bytes") is not None:
            seq, name, payload = unpack_blob(msg["bytes"])
            assert seq == meta["seq"]
            parts[name] = payload
    assert [p["name"] for p in meta["panels"]] == list(parts)
    if ack:
        ws.send_text(json.dumps({"type": "ack", "seq": meta["seq"]}))
    return meta, parts
