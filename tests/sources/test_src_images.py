"""Still images: one file, a folder (recursive, natural order, corrupt files skipped), a glob."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from helpers.media import mean_abs_diff
from PIL import Image

from convscope.errors import SourceError
from convscope.sources import open_source

PHOTOS = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee(), "rocket": skimage.data.rocket()}


@pytest.fixture
def album(tmp_path: Path) -> Path:
    """img2.png (chelsea), img10.jpg (coffee), sub/img3.png (rocket), a broken and a truncated JPEG.

    Natural order is folder by folder: img2 < img10 (numbers compare as numbers) < sub/.
    """
    root = tmp_path / "album"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(PHOTOS["chelsea"]).save(root / "img2.png")
    Image.fromarray(PHOTOS["coffee"]).save(root / "img10.jpg", quality=95)
    Image.fromarray(PHOTOS["rocket"]).save(root / "sub" / "img3.png")
    (root / "img5.jpg").write_bytes(b"not a jpeg at all")
    good = (root / "img10.jpg").read_bytes()
    (root / "img7.jpg").write_bytes(good[: len(good) // 3])
    (root / "notes.txt").write_text("ignored: not an image")
    return root


def test_single_image_is_one_frame_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    Image.fromarray(PHOTOS["chelsea"]).save(path)
    with open_source(str(path), realtime=False) as src:
        frames = list(src)
        info = src.info
    assert (info.kind, info.width, info.height, info.live) == ("image", 451, 300, False)
    assert len(frames) == 1 and frames[0].path == str(path)
    assert np.array_equal(frames[0].image, PHOTOS["chelsea"])
    assert frames[0].image.flags["C_CONTIGUOUS"]


def test_folder_in_natural_order_skipping_corrupt_files(album: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="convscope.sources"):
        with open_source(str(album), realtime=False) as src:
            frames = list(src)
            skipped = dict(src.skipped)
            state = src.state
    assert [Path(f.path).relative_to(album).as_posix() for f in frames] == ["img2.png", "img10.jpg", "sub/img3.png"]
    assert np.array_equal(frames[0].image, PHOTOS["chelsea"])
    assert mean_abs_diff(frames[1].image, PHOTOS["coffee"]) < 3
    assert np.array_equal(frames[2].image, PHOTOS["rocket"])
    assert set(skipped) == {str(album / "img5.jpg"), str(album / "img7.jpg")}
    assert all(reason and "\n" not in reason for reason in skipped.values())
    assert state.status == "ended"
    assert "img5.jpg" in caplog.text and "img7.jpg" in caplog.text


def test_glob_selects_matching_images(album: Path) -> None:
    with open_source(str(album / "**" / "*.png"), realtime=False) as src:
        names = [Path(f.path).name for f in src]
    assert names == ["img2.png", "img3.png"]


def test_folder_loops_when_asked(album: Path) -> None:
    with open_source(str(album), realtime=False, loop=True) as src:
        frames = [f for _, f in zip(range(7), src, strict=False)]
        assert len(src.skipped) == 2  # skipped once, not once per pass
    assert [Path(f.path).name for f in frames] == ["img2.png", "img10.jpg", "img3.png"] * 2 + ["img2.png"]
    assert np.all(np.diff([f.timestamp for f in frames]) > 0)


def test_realtime_folder_is_a_slideshow(album: Path) -> None:
    start = time.monotonic()
    with open_source(str(album), realtime=True) as src:
        assert src.read(timeout=5) is not None
        assert src.read(timeout=5) is not None
    assert time.monotonic() - start >= 0.9  # one second per image: a lower bound


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: None, "no images"),
        (lambda d: (d / "a.jpg").write_bytes(b"garbage"), "no readable images"),
    ],
)
def test_folders_without_readable_images_fail(tmp_path: Path, setup, fragment: str) -> None:
    setup(tmp_path)
    with pytest.raises(SourceError, match=fragment) as err:
        open_source(str(tmp_path))
    assert "\n" not in str(err.value)


def test_a_corrupt_single_image_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(SourceError, match="cannot read image .*bad.png"):
        open_source(str(bad))


def test_glob_matching_nothing_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images match"):
        open_source(str(tmp_path / "*.jpg"))
