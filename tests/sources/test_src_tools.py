"""The skip-or-fail rule for missing external tools (ffmpeg, GStreamer)."""

from __future__ import annotations

import pytest
from helpers.tools import require


def test_missing_tool_skips_with_its_reason_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="ffmpeg is not installed"):
        require(False, "ffmpeg is not installed")


def test_missing_tool_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="GStreamer RTSP server unavailable.*CI=true"):
        require(False, "GStreamer RTSP server unavailable")


def test_present_tool_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require(True, "unused")
