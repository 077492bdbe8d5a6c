"""``convscope probe``: what a user debugging a source sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convscope.cli.main import main


def test_probe_json_for_a_file(h264_mp4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(h264_mp4), "--seconds", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: report[k] for k in ("kind", "width", "height", "fps", "live", "frames", "dropped", "reconnects",
                                   "state")} == {
        "kind": "file", "width": 320, "height": 240, "fps": 25.0, "live": False, "frames": 50, "dropped": 0,
        "reconnects": 0, "state": "ended"}


def test_probe_text_for_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "demo", "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "demo (not live)" in out and "640x480" in out and "state      playing" in out


def test_probe_folder_lists_skipped_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"broken")
    assert main(["probe", str(tmp_path), "--json", "--seconds", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 1 and [s["path"] for s in report["skipped"]] == [str(tmp_path / "b.jpg")]


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["probe", "/no/such/clip.mp4"], 1, "error: no such file or folder: /no/such/clip.mp4"),
        (["probe", "ftp://user:pw@host/x"], 1, "error: unsupported URL scheme 'ftp' in ftp://user:***@host/x"),
        (["probe", "demo", "--seconds", "0"], 2, "--seconds: expected a positive number"),
        (["probe", "demo", "--max-reconnects", "-2"], 2, "--max-reconnects: expected 0 or more"),
    ],
)
def test_probe_errors_are_one_line(argv: list[str], code: int, fragment: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "pw" not in err
