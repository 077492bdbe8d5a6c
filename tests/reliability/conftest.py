"""Fixtures for the reliability tests: ``convscope live`` processes that are always cleaned up."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest
from rel_helpers import LiveRun


@pytest.fixture
def start_live(tmp_path) -> Iterator:
    """``start_live(*flags, nofile=None) -> LiveRun``; every process is killed at the end."""
    runs: list[LiveRun] = []

    def start(*args: str, nofile: tuple[int, int] | None = None) -> LiveRun:
        folder = tmp_path / f"live{len(runs)}"
        folder.mkdir()
        run = LiveRun(*args, folder=folder, nofile=nofile)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


@pytest.fixture
def many_fds() -> None:
    """Let the test process itself hold a few thousand sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
