"""Webcams: no device here, so test the spec forms and the error for a missing device."""

from __future__ import annotations

import time

import pytest

from convscope.errors import SourceError
from convscope.sources import open_source
from convscope.sources.webcam import available_webcams


def _absent_index() -> int:
    present = set(available_webcams())
    return next(i for i in range(7, 100) if i not in present)


@pytest.mark.parametrize("form", ["{n}", "/dev/video{n}"])
def test_missing_webcam_fails_fast_in_one_line(form: str) -> None:
    n = _absent_index()
    start = time.monotonic()
    with pytest.raises(SourceError) as err:
        open_source(form.format(n=n), open_timeout=2, read_timeout=2)
    assert time.monotonic() - start < 10  # generous: it must not wait for a device
    message = str(err.value)
    assert f"no webcam {n}" in message and f"/dev/video{n}" in message and "\n" not in message
