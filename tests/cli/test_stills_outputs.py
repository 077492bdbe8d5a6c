"""Output path rules, writers, the contact sheet and the batch runner (no model involved)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from convscope.errors import InputError, OutputError
from convscope.stills.inputs import Item, expand_input
from convscope.stills.outputs import plan_layout, write_image, write_json, write_npy
from convscope.stills.runner import run_items
from convscope.stills.sheet import Panel, contact_sheet, predictions_panel


def test_single_image_to_file_name(tmp_path):
    layout = plan_layout("image", tmp_path / "out" / "result.jpg")
    item = Item("chelsea.png", tmp_path / "chelsea.png")
    assert layout.image_path(item, "_0") == tmp_path / "out" / "result_0.jpg"
    assert layout.image_path(item) == tmp_path / "out" / "result.jpg"
    assert (tmp_path / "out").is_dir()


def test_single_image_to_existing_folder_keeps_input_name(tmp_path):
    layout = plan_layout("image", tmp_path)
    item = Item("cat.jpeg", tmp_path / "in" / "cat.jpeg")
    assert layout.image_path(item, "_1") == tmp_path / "cat_1.jpeg"
    assert layout.folder(item) == tmp_path
    gif = Item("anim.gif", tmp_path / "in" / "anim.gif")
    assert layout.image_path(gif, "_0").suffix == ".png"  # a palette format would spoil a heatmap


def test_folder_mirrors_relative_paths(tmp_path):
    layout = plan_layout("folder", tmp_path / "maps")
    item = Item("a/b/c.png", tmp_path / "src" / "a" / "b" / "c.png")
    assert layout.image_path(item, "_0") == tmp_path / "maps" / "a" / "b" / "c_0.png"
    assert layout.folder(item) == tmp_path / "maps" / "a" / "b" / "c"
    forced = plan_layout("folder", tmp_path / "maps", ext="jpg")
    assert forced.image_path(item, "_0").suffix == ".jpg"


def test_unwritable_and_wrong_outputs(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        plan_layout("folder", blocker / "sub")
    with pytest.raises(OutputError, match="is a file"):
        plan_layout("folder", blocker)
    with pytest.raises(OutputError, match="as .xyz"):
        plan_layout("folder", tmp_path / "o", ext="xyz")
    src = tmp_path / "cat.png"
    with pytest.raises(OutputError, match="overwrite the input"):
        plan_layout("image", src).image_path(Item("cat.png", src))


def test_writers_round_trip(tmp_path):
    img = data.astronaut()
    p = write_image(tmp_path / "x" / "a.png", img)
    assert np.array_equal(np.asarray(Image.open(p)), img)
    raw = np.linspace(-1, 1, 12, dtype=np.float64).reshape(3, 4)
    n = write_npy(tmp_path / "r.npy", raw)
    back = np.load(n)
    assert back.dtype == np.float32 and np.allclose(back, raw)
    j = write_json(tmp_path / "report.json", {"a": [1, 2]})
    assert json.loads(j.read_text()) == {"a": [1, 2]}


def test_contact_sheet_lays_out_labelled_tiles():
    preds = predictions_panel([(285, "Egyptian cat", 0.6), (281, "tabby", 0.2)])
    assert preds.shape == (224, 224, 3)
    # the first bar is three times as long as the second: count blue pixels per bar row band
    blue = (preds[..., 2] > 200) & (preds[..., 0] < 100)
    rows = np.nonzero(blue.any(axis=1))[0]
    first = blue[rows[0]].sum()
    second = blue[rows[-1]].sum()
    assert first == pytest.approx(3 * second, rel=0.05)
    panels = [Panel(data.chelsea(), ("input", "chelsea.png")), Panel(preds, ("top-2",))] + [
        Panel(data.coffee(), ("map", f"class {i}", "layer")) for i in range(4)
    ]
    sheet = contact_sheet("chelsea.png · model", panels, columns=4)
    h, w, _ = sheet.shape
    assert w > 4 * 224 and h > 2 * 224  # 4 columns, 2 rows
    assert sheet[h - 10, w - 10].tolist() == [255, 255, 255]  # the empty cell stays blank
    dark = (sheet[:30].sum(axis=2) < 200).sum()
    assert dark > 50  # the title is drawn
    with pytest.raises(ValueError):
        contact_sheet("empty", [])


def test_runner_batches_and_skips(photo_folder):
    seen: list[int] = []

    def process(items, frames):
        assert len(items) == len(frames)
        assert all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
        seen.append(len(items))

    summary = run_items(expand_input(photo_folder), process, batch_size=5, progress=False)
    assert summary.done == 32 and sum(seen) == 32 and max(seen) == 5
    assert [rel for rel, _ in summary.skipped] == ["set_a/img99_broken.png"]
    with pytest.raises(InputError, match="img99_broken.png.*--strict"):
        run_items(expand_input(photo_folder), process, batch_size=5, strict=True, progress=False)


def test_runner_single_unreadable_image_is_an_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match="cannot read"):
        run_items(expand_input(bad), lambda items, frames: None, progress=False)


def test_progress_bar_counts_images_per_second(photo_folder, capsys):
    run_items(expand_input(photo_folder / "set_b"), lambda items, frames: None, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "16/16" in err and "img/s" in err
    run_items(expand_input(photo_folder / "set_b"), lambda items, frames: None, progress=False)
    assert capsys.readouterr().err == ""
