"""The hand-over between reader thread and consumer: newest-wins or queue, drops counted."""

from __future__ import annotations

import threading
import time

import numpy as np

from convscope.sources.buffer import FrameBuffer
from convscope.sources.types import Frame

IMAGE = np.zeros((2, 2, 3), np.uint8)


def frame(i: int) -> Frame:
    return Frame(IMAGE, i, i / 25)


def test_latest_only_keeps_the_newest_and_counts_drops() -> None:
    buf, stop = FrameBuffer(latest_only=True), threading.Event()
    for i in range(5):
        buf.put(frame(i), stop)
    assert buf.next(0).index == 4
    assert buf.dropped == 4
    assert buf.next(0) is None


def test_queue_keeps_order_and_newest_skips_to_the_end() -> None:
    buf, stop = FrameBuffer(latest_only=False, capacity=8), threading.Event()
    for i in range(4):
        buf.put(frame(i), stop)
    assert [buf.next(0).index, buf.next(0).index] == [0, 1]
    assert buf.newest(0).index == 3
    assert buf.dropped == 1


def test_full_queue_makes_the_producer_wait_until_consumed() -> None:
    buf, stop = FrameBuffer(latest_only=False, capacity=2), threading.Event()
    done = threading.Event()

    def produce() -> None:
        for i in range(5):
            buf.put(frame(i), stop)
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.3)  # blocked on a full queue
    got = [buf.next(5).index for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert done.wait(5)
    assert buf.dropped == 0


def test_stop_releases_a_blocked_producer() -> None:
    buf, stop = FrameBuffer(latest_only=False, capacity=1), threading.Event()
    buf.put(frame(0), stop)
    t = threading.Thread(target=buf.put, args=(frame(1), stop), daemon=True)
    t.start()
    stop.set()
    t.join(5)
    assert not t.is_alive()


def test_finish_drains_then_ends_and_timeouts_return_none() -> None:
    buf, stop = FrameBuffer(latest_only=False), threading.Event()
    start = time.monotonic()
    assert buf.next(0.05) is None
    assert time.monotonic() - start < 5  # generous: only proves it does not hang
    buf.put(frame(7), stop)
    buf.finish()
    assert not buf.finished
    assert buf.next(None).index == 7
    assert buf.next(None) is None
    assert buf.finished


def test_frames_put_after_finish_are_ignored() -> None:
    buf, stop = FrameBuffer(latest_only=True), threading.Event()
    buf.finish()
    buf.put(frame(1), stop)
    assert buf.next(0) is None and buf.finished
