"""Message types for playback (issue 14), checked as strictly as :mod:`convscope.server.protocol`'s.

Page -> server (JSON text)::

    {"type": "seek", "frame": N}                       show frame N (0-based) of a file or folder
    {"type": "step", "by": N}                          pause and move N frames (N = -1 or 1 from the keys)
    {"type": "speed", "speed": X, "every_frame": B}    either or both: X in 0.25..4 on the media
                                                       clock; every_frame: no frame passed over
    {"type": "snapshot"}                               write the current moment (any source); the
                                                       reply, to that viewer only, is a "snapshot"
                                                       message: name, folder, url (the zip), files

The existing ``pause`` message plays and pauses a file too; playing an ended file replays it.

Server -> page: ``playback`` (see :meth:`convscope.sources.playback.Player.describe`), sent to
every viewer when anything in it changes, and ``null`` in ``hello.playback`` for live sources.
Each ``frame`` header also carries ``source_frame``: ``{"index", "time"}`` of the input frame it
shows. A message that does not fit raises :class:`~convscope.errors.RequestError` (one line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convscope.errors import RequestError
from convscope.server.protocol import _check_keys, _show

MAX_STEP = 1_000_000


@dataclass(frozen=True)
class SeekMessage:
    frame: int


@dataclass(frozen=True)
class StepMessage:
    by: int


@dataclass(frozen=True)
class SpeedMessage:
    speed: float | None
    every_frame: bool | None


KINDS = ("seek", "step", "speed")


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {_show(value)}")
    return value


def parse(msg: dict, player: Any | None) -> SeekMessage | StepMessage | SpeedMessage:
    """Check one decoded message of a type in :data:`KINDS` against the player (``None``: live source).

    Raises:
        RequestError: one line; nothing has changed.
    """
    kind = msg.get("type")
    if player is None:
        raise RequestError(f"{kind} needs a file or folder source; this one plays live (newest frame)")
    if kind == "seek":
        _check_keys(msg, ("frame",), "seek")
        frame = _whole(msg.get("frame"), "frame")
        count = player.describe()["count"]
        if not 0 <= frame < count:
            raise RequestError(f"frame {frame} is out of range (0..{count - 1})")
        return SeekMessage(frame)
    if kind == "step":
        _check_keys(msg, ("by",), "step")
        by = _whole(msg.get("by"), "by")
        if by == 0 or abs(by) > MAX_STEP:
            raise RequestError(f"by must be a non-zero step of at most {MAX_STEP} frames, got {by}")
        return StepMessage(by)
    if kind == "speed":
        _check_keys(msg, ("speed", "every_frame"), "speed")
        if "speed" not in msg and "every_frame" not in msg:
            raise RequestError("a 'speed' message needs speed (0.25..4) and/or every_frame (true/false)")
        speed = msg.get("speed")
        if speed is not None or "speed" in msg:
            lo, hi = player.describe()["min_speed"], player.describe()["max_speed"]
            if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) \
                    or not lo <= speed <= hi:
                raise RequestError(f"speed must be a number from {lo:g} to {hi:g}, got {_show(speed)}")
        every = msg.get("every_frame")
        if "every_frame" in msg and not isinstance(every, bool):
            raise RequestError(f"every_frame must be true or false, got {_show(every)}")
        return SpeedMessage(float(speed) if speed is not None else None, every)
    raise RequestError(f"unknown message type {str(kind)[:40]!r}")


def parse_snapshot(msg: dict, folder: Any) -> None:
    """``{"type": "snapshot"}``: no fields; refused when the dashboard keeps no snapshots."""
    _check_keys(msg, (), "snapshot")
    if folder is None:
        raise RequestError("this dashboard keeps no snapshots (start it with --snapshots DIR)")


def apply(msg: SeekMessage | StepMessage | SpeedMessage, player: Any) -> None:
    if isinstance(msg, SeekMessage):
        player.seek(msg.frame)
    elif isinstance(msg, StepMessage):
        player.step(msg.by)
    else:
        player.set_speed(msg.speed, msg.every_frame)
