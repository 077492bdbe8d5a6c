"""One pixel limit for every decoder, checked from the header before decoding (issue 18, item 2).

The bomb is a real 12042x12042 PNG (145 megapixels, 435 MB decoded) written row by row, so the
test itself never holds it in memory.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rel_helpers import ROOT, SERVER_TESTS

from convscope import pixels
from convscope.pixels import DEFAULT_MAX_PIXELS, ImageTooLarge, open_image, set_max_pixels
from convscope.sources.images import load_image
from convscope.stills.inputs import Unreadable, read_image

SIDE = 12042  # 145.0 megapixels


def write_png(path: Path, width: int, height: int) -> Path:
    """A grey RGB PNG streamed to disk a block of rows at a time."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x80" * (width * 3)
    comp = zlib.compressobj(1)
    parts = []
    for start in range(0, height, 256):
        parts.append(comp.compress(row * min(256, height - start)))
    parts.append(comp.flush())
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", b"".join(parts)))
        f.write(chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("bomb") / "big.png", SIDE, SIDE)


@pytest.fixture(scope="module")
def bomb_folder(bomb, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slides")
    os.link(bomb, folder / "a_big.png")
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(folder / "b_small.png")
    return folder


@pytest.fixture(autouse=True)
def default_limit():
    set_max_pixels(None)
    yield
    set_max_pixels(None)


def test_default_is_pillows_and_refusal_comes_from_the_header(bomb):
    assert pixels.max_pixels() == DEFAULT_MAX_PIXELS == 89_478_485
    with pytest.raises(ImageTooLarge, match=r"12042x12042 = 145\.0 megapixels.*--max-pixels"):
        open_image(bomb)


def test_every_still_path_refuses_it(bomb):
    with pytest.raises(Unreadable, match="image too large"):
        read_image(bomb)  # gradcam / guided-backprop / explain
    with pytest.raises(ImageTooLarge):
        load_image(str(bomb))  # live image and folder sources


def test_max_pixels_raises_the_limit(bomb):
    set_max_pixels(SIDE * SIDE)
    with open_image(bomb) as im:  # opened, not decoded
        assert im.size == (SIDE, SIDE)
    assert Image.MAX_IMAGE_PIXELS == SIDE * SIDE  # Pillow's own guard follows


def test_environment_variable(bomb, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_MAX_PIXELS", str(SIDE * SIDE))
    assert pixels.max_pixels() == SIDE * SIDE


def test_image_sources_hand_out_writable_arrays(bomb_folder):
    image = load_image(str(bomb_folder / "b_small.png"))
    assert image.flags.writeable and image.shape == (48, 64, 3)


_PEAK = """
import sys, time
from convscope.sources import open_source
src = open_source(sys.argv[1], realtime=True, loop=True)
t0 = time.monotonic()
seen = set()
while time.monotonic() - t0 < 2.5:
    f = src.latest(0.1)
    if f is not None:
        seen.add(f.path)
src.close()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(int(hwm) * 1024, sorted(seen), src.skipped)
"""


def test_a_looping_folder_with_a_bomb_stays_small(bomb_folder):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _PEAK, str(bomb_folder)], capture_output=True, text=True,
                         env=env, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    peak, rest = out.stdout.split(" ", 1)
    print(f"peak RSS {int(peak) / 1e6:.0f} MB over a looping folder holding a 145-megapixel PNG")
    assert int(peak) < 400e6  # decoding the bomb alone would take 435 MB
    assert "b_small.png" in rest and "a_big.png" not in rest.split("]")[0]
    assert out.stderr.count("skipping unreadable image") == 1, out.stderr  # one line, not one per loop
    assert "image too large" in out.stderr


@pytest.mark.slow
def test_live_refuses_a_single_bomb_in_one_line(bomb, capsys, monkeypatch):
    from convscope.cli.main import main

    monkeypatch.syspath_prepend(str(SERVER_TESTS))
    code = main(["live", "--port", "0", "-m", "server_models:tiny_cnn", "--input-size", "64", "--source", str(bomb)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "image too large" in lines[0], err
    print(lines[0])
