"""Fixtures for the server tests: the dashboard app around the real engine and demo source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_helpers import BASE_URL, Built
from starlette.testclient import TestClient

from convscope.server.app import create_app
from convscope.server.dashboard import Dashboard


@pytest.fixture
def built() -> Iterator[Built]:
    b = Built()
    yield b
    b.close()


@pytest.fixture
def dashboard(built: Built) -> Dashboard:
    return built.dashboard


@pytest.fixture
def client(dashboard: Dashboard) -> Iterator[TestClient]:
    with TestClient(create_app(dashboard), base_url=BASE_URL) as c:
        yield c
