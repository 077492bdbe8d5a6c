"""Which reader a spec selects, and the one-line errors for specs that name nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from convscope.errors import SourceError
from convscope.sources.masking import mask_secrets
from convscope.sources.spec import parse_spec


@pytest.fixture
def files(tmp_path: Path) -> Path:
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "cat.JPG")
    (tmp_path / "clip.mkv").write_bytes(b"\x1a\x45\xdf\xa3")
    (tmp_path / "photos").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "kind", "index"),
    [("demo", "demo", None), ("DEMO", "demo", None), ("0", "webcam", 0), ("12", "webcam", 12),
     ("/dev/video3", "webcam", 3)],
)
def test_keywords_and_webcams(spec: str, kind: str, index: int | None) -> None:
    parsed = parse_spec(spec)
    assert (parsed.kind, parsed.webcam_index) == (kind, index)


@pytest.mark.parametrize(
    "url", ["rtsp://cam.local:554/live", "rtsps://cam/x", "rtmp://h/app/key", "http://h/video.mjpg",
            "https://h/index.m3u8", "udp://@:1234", "tcp://127.0.0.1:9000", "srt://h:9000"],
)
def test_urls_are_streams(url: str) -> None:
    parsed = parse_spec(url)
    assert parsed.kind == "stream"
    assert parsed.scheme == url.split("://")[0]


def test_paths_by_what_exists(files: Path) -> None:
    assert parse_spec(str(files / "cat.JPG")).kind == "image"
    assert parse_spec(str(files / "clip.mkv")).kind == "file"
    assert parse_spec(str(files / "photos")).kind == "folder"
    assert parse_spec(f"file://{files / 'clip.mkv'}").kind == "file"
    glob = parse_spec(str(files / "*.jpg"))
    assert (glob.kind, glob.target) == ("folder", str(files / "*.jpg"))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("", "empty source"), ("ftp://h/x.mp4", "unsupported URL scheme 'ftp'"),
     ("rtsp:///nohost", "no host"), ("/no/such/video.mp4", "no such file or folder: /no/such/video.mp4")],
)
def test_bad_specs_fail_in_one_line(spec: str, fragment: str) -> None:
    with pytest.raises(SourceError) as err:
        parse_spec(spec)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_errors_mask_passwords() -> None:
    with pytest.raises(SourceError) as err:
        parse_spec("gopher://admin:hunter2@cam/x")
    assert "hunter2" not in str(err.value)
    assert "admin:***@cam" in str(err.value)
    assert parse_spec("rtsp://admin:hunter2@cam/x").display == "rtsp://admin:***@cam/x"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("rtsp://user:p%40ss@10.0.0.2:554/s", "rtsp://user:***@10.0.0.2:554/s"),
        ("error in http://a:b@h/x and rtmp://c:d@h2/y", "error in http://a:***@h/x and rtmp://c:***@h2/y"),
        ("https://h/cam?user=me&password=s3cret&fps=5", "https://h/cam?user=me&password=***&fps=5"),
        ("https://h/live.m3u8?token=abc.def", "https://h/live.m3u8?token=***"),
        ("rtsp://user@h/s", "rtsp://user@h/s"),
        ("/home/me/video.mp4", "/home/me/video.mp4"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def test_webcam_number_is_not_a_file_named_like_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "0", format="PNG")
    assert parse_spec("0").kind == "webcam"
    assert parse_spec("./0").kind == "file"
