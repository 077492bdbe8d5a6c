"""Closing, context managers, argument checks and threads: a source never outlives its user."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from convscope.errors import SourceError
from convscope.sources import Frame, Source, SourceInfo, SourceState, open_source
from convscope.sources.source import backoff_delay


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("convscope-source-")]


def test_close_is_quick_idempotent_and_stops_the_thread() -> None:
    before = set(_reader_threads())
    src = open_source("demo", realtime=True)
    assert isinstance(src, Source) and isinstance(src.info, SourceInfo)
    assert isinstance(src.latest(timeout=2), Frame)
    start = time.monotonic()
    src.close()
    src.close()
    assert time.monotonic() - start < 5
    deadline = time.monotonic() + 5
    while set(_reader_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(_reader_threads()) - before
    assert src.state == SourceState("ended", 0, None)
    assert src.latest(timeout=0.1) is None and list(src) == []


def test_iteration_ends_when_closed_from_another_thread(h264_mp4: Path) -> None:
    with open_source(str(h264_mp4), realtime=True, loop=True) as src:
        threading.Timer(0.5, src.close).start()
        count = sum(1 for _ in src)  # would loop forever without the close
    assert count > 0


def test_latest_never_blocks_past_its_timeout(h264_mp4: Path) -> None:
    with open_source(str(h264_mp4), realtime=False) as src:
        list(src)  # drained: nothing newer will come
        start = time.monotonic()
        assert src.latest(timeout=0.2) is None
        assert time.monotonic() - start < 3  # generous


def test_context_manager_closes_on_error() -> None:
    with pytest.raises(RuntimeError), open_source("demo") as src:
        raise RuntimeError("boom")
    assert src.state.status == "ended"


@pytest.mark.parametrize(
    "kwargs", [{"open_timeout": 0}, {"read_timeout": -1}, {"read_timeout": float("nan")}, {"max_reconnects": -1}]
)
def test_bad_arguments_are_source_errors(kwargs: dict) -> None:
    with pytest.raises(SourceError):
        open_source("demo", **kwargs)


def test_backoff_doubles_from_half_a_second_up_to_ten() -> None:
    assert [backoff_delay(a) for a in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
