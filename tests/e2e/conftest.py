"""One Chromium per test module (see ``chromium.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chromium import launch


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator:
    yield from launch()
