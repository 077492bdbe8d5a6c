"""INPUT expansion and robust image reading."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from convscope.errors import InputError
from convscope.stills.inputs import Unreadable, expand_input, natural_key, read_image


def test_natural_sort_orders_numbers_by_value():
    names = ["img10.png", "img2.png", "Img1.png", "a/img3.png"]
    assert sorted(names, key=natural_key) == ["a/img3.png", "Img1.png", "img2.png", "img10.png"]


def test_folder_is_recursive_natural_sorted_images_only(photo_folder):
    inputs = expand_input(photo_folder)
    items = list(inputs.items)
    assert inputs.kind == "folder" and inputs.count == len(items) == 33  # 32 good + 1 corrupt
    rels = [it.rel for it in items]
    assert "notes.txt" not in rels
    assert all(r.startswith(("set_a/", "set_b/")) for r in rels)
    set_a = [r for r in rels if r.startswith("set_a/")]
    numbers = [int(r.split("/img")[1].split("_")[0]) for r in set_a]
    assert numbers == sorted(numbers)  # img1, img3, ..., img31, img99 (not img1, img11, ...)


def test_single_image_item(chelsea_path):
    inputs = expand_input(chelsea_path)
    (item,) = list(inputs.items)
    assert inputs.kind == "image" and item.stem == "chelsea" and item.ext == ".png"


def test_missing_input_and_empty_folder_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        expand_input(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="no images found"):
        expand_input(tmp_path)


def test_read_image_applies_exif_orientation(tmp_path):
    img = data.chelsea()  # 300 x 451
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(img).save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (451, 300, 3) and out.dtype == np.uint8
    # after the rotation, the top-left pixel is the original's bottom-left
    np.testing.assert_allclose(out[:20, :20].mean(axis=(0, 1)), img[-20:, :20].mean(axis=(0, 1)), atol=12)


def test_read_image_converts_modes(tmp_path):
    grey = (data.camera()).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    g = read_image(tmp_path / "grey.png")
    assert g.shape == grey.shape + (3,) and np.array_equal(g[..., 0], grey) and np.array_equal(g[..., 1], grey)

    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half
    rgba[:, 5:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    a = read_image(tmp_path / "alpha.png")
    assert a[0, 0].tolist() == [255, 255, 255] and a[0, 9].tolist() == [255, 0, 0]

    deep = (np.arange(100, dtype=np.uint16).reshape(10, 10) * 600)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    d = read_image(tmp_path / "deep.png")
    assert d[..., 0].max() > 200 and d[..., 0].min() == 0  # scaled, not clipped to 255 everywhere


@pytest.mark.parametrize("content,reason", [
    (b"", "not an image"),
    (b"this is text, not a picture", "not an image"),
])
def test_unreadable_files_give_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(Unreadable, match=reason):
        read_image(path)


def test_truncated_file_is_corrupt(photo_folder):
    with pytest.raises(Unreadable, match="corrupt|not an image"):
        read_image(photo_folder / "set_a" / "img99_broken.png")


def test_video_items_every_n(tmp_path):
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-frames:v", "10", "-pix_fmt", "yuv420p", str(video)], check=True)
    inputs = expand_input(video, every=3)
    items = list(inputs.items)
    assert inputs.kind == "video"
    assert [it.frame for it in items] == [0, 3, 6, 9]
    assert items[1].rel == "clip_000003" and items[1].image.shape == (120, 160, 3)
    with pytest.raises(InputError, match="--every"):
        expand_input(video, every=0)
