"""Fixtures for the server tests: a dashboard app around an engine and a source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_fakes import LABELS, LAYERS, FakeEngine, FakeSource
from starlette.testclient import TestClient

from convscope.server import protocol
from convscope.server.app import Dashboard, create_app
from convscope.server.pipeline import Pipeline
from convscope.server.security import Guard

ALGORITHMS = ("gradcam", "guided_backprop", "guided_gradcam", "saliency")
BASE_URL = "http://127.0.0.1:8765"


def build_dashboard(token: str | None = None, loopback: bool = True, delay: float = 0.0,
                    fps: float = 60.0) -> tuple[Dashboard, FakeEngine, FakeSource]:
    engine = FakeEngine(delay)
    source = FakeSource(fps)
    space = protocol.ModelSpace.from_layers(LAYERS, len(LABELS), ALGORITHMS)
    menu = [{"name": a, "title": a, "summary": "", "target_role": "class"} for a in ALGORITHMS]
    hello = protocol.hello_message("fake", LAYERS, LABELS, menu, {"kind": "demo", "spec": "demo"}, space)
    pipeline = Pipeline(engine, source, protocol.ViewState.initial(space))
    dash = Dashboard(pipeline, space, hello, Guard(token, loopback), engine.resolve)
    return dash, engine, source


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    dash, _, source = build_dashboard()
    yield dash
    source.close()


@pytest.fixture
def client(dashboard: Dashboard) -> Iterator[TestClient]:
    with TestClient(create_app(dashboard), base_url=BASE_URL) as c:
        yield c
