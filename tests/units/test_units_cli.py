"""``convscope units``: units.json against a brute-force computation, resuming, videos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from convscope.errors import UsageError
from convscope.models import discover_layers, load_model
from convscope.models.preprocess import to_input
from convscope.stills.inputs import list_folder, read_image
from convscope.units.dataset import UnitsOptions, UnitsRun
from convscope.units.receptive_field import receptive_field, to_source

SIZE = 96


@pytest.fixture(scope="module")
def bundle():
    return load_model("efficientnet_lite0", input_size=SIZE)


@pytest.fixture(scope="module")
def full_run(photo_folder, tmp_path_factory, bundle):
    """The uninterrupted run (the command line itself is exercised by tests/e2e/test_units_page.py)."""
    out = tmp_path_factory.mktemp("units_full")
    opts = UnitsOptions(layers=("blocks.1", "blocks.3"), top_k=3, batch_size=2, channels=tuple(range(6)))
    UnitsRun(bundle, photo_folder, out, opts, progress=False).run()
    return out


def _brute_force(bundle, folder: Path, layer_name: str, channels, k):
    """One image at a time, one channel at a time: max, argmax, receptive field box, sorted."""
    layers = {la.name: la for la in discover_layers(bundle)}
    layer = layers[layer_name]
    rf = receptive_field(bundle, layer, method="architecture")
    per_channel = {c: [] for c in channels}
    got: list[torch.Tensor] = []
    h = dict(bundle.module.named_modules())[layer_name].register_forward_hook(lambda _m, _i, o: got.append(o.clone()))
    for path in list_folder(folder):
        frame = read_image(path)
        got.clear()
        with torch.no_grad():
            bundle.module(to_input(frame, bundle.preprocessing, "cpu"))
        amap = layer.as_map(got[0])[0]
        for c in channels:
            m = amap[c]
            y, x = divmod(int(m.flatten().argmax()), m.shape[1])
            box = to_source(rf.box(y, x), frame.shape[:2], bundle.preprocessing)
            per_channel[c].append({"source": path.relative_to(folder).as_posix(), "frame": None,
                                   "box": list(box), "score": float(m[y, x])})
    h.remove()
    return [{"channel": c, "top": sorted(v, key=lambda e: -e["score"])[:k]} for c, v in per_channel.items()]


def test_units_json_schema_and_brute_force(full_run, photo_folder, bundle):
    doc = json.loads((full_run / "units.json").read_text())
    assert set(doc) == {"model", "layers"} and doc["model"] == "efficientnet_lite0"
    assert list(doc["layers"]) == ["blocks.1", "blocks.3"]
    for name, rows in doc["layers"].items():
        assert [r["channel"] for r in rows] == list(range(6))
        expected = _brute_force(bundle, photo_folder, name, range(6), 3)
        for row, ref in zip(rows, expected, strict=True):
            assert set(row) == {"channel", "top"}
            assert len(row["top"]) == 3
            scores = [t["score"] for t in row["top"]]
            assert scores == sorted(scores, reverse=True)
            for t, r in zip(row["top"], ref["top"], strict=True):
                assert set(t) == {"source", "frame", "box", "score"}
                assert (t["source"], t["frame"], t["box"]) == (r["source"], r["frame"], r["box"]), (name, row["channel"])
                assert math.isclose(t["score"], r["score"], rel_tol=1e-4, abs_tol=1e-4)
    # every patch file exists
    pages = sorted(p.name for p in full_run.glob("*.html"))
    assert pages == ["blocks.1.html", "blocks.3.html", "index.html"]
    assert len(list((full_run / "patches" / "blocks.1").glob("*.jpg"))) == 6 * 3


def test_resume_after_a_kill_gives_the_same_result(full_run, photo_folder, bundle, tmp_path):
    opts = UnitsOptions(layers=("blocks.1", "blocks.3"), top_k=3, batch_size=2, channels=tuple(range(6)))

    def kill_after(n):
        def on_batch(done):
            if done == n:
                raise KeyboardInterrupt
        return on_batch

    with pytest.raises(KeyboardInterrupt):
        UnitsRun(bundle, photo_folder, tmp_path, opts, progress=False, on_batch=kill_after(2)).run()
    assert not (tmp_path / "units.json").exists()
    again = UnitsRun(bundle, photo_folder, tmp_path, opts, progress=False)
    again.run()
    assert (again.stats.reused, again.stats.computed) == (4, 2)  # nothing computed twice
    assert json.loads((tmp_path / "units.json").read_text()) == json.loads((full_run / "units.json").read_text())
    third = UnitsRun(bundle, photo_folder, tmp_path, opts, progress=False)
    third.run()
    assert (third.stats.reused, third.stats.computed) == (6, 0)


def test_other_settings_in_the_same_outdir_are_refused(full_run, photo_folder, bundle):
    opts = UnitsOptions(layers=("blocks.1", "blocks.3"), top_k=4, batch_size=2, channels=tuple(range(6)))
    with pytest.raises(UsageError, match="other settings"):
        UnitsRun(bundle, photo_folder, full_run, opts, progress=False)


def test_video_frames_are_deduplicated(h264_mp4, bundle, tmp_path):
    """A clip of slowly changing frames: units keep patches of different scenes or far apart."""
    opts = UnitsOptions(layers=("blocks.3",), top_k=4, batch_size=8, every=2, channels=tuple(range(8)))
    run = UnitsRun(bundle, h264_mp4, tmp_path, opts, progress=False)
    doc = run.run()
    tracker = run.trackers["blocks.3"]
    for row in doc["layers"]["blocks.3"]:
        assert row["top"] and all(t["source"] == h264_mp4.name and isinstance(t["frame"], int) for t in row["top"])
        assert all(0 <= t["box"][0] < t["box"][2] <= 320 and 0 <= t["box"][1] < t["box"][3] <= 240 for t in row["top"])
        entries = tracker.entries(row["channel"])
        for i, a in enumerate(entries):
            for b in entries[i + 1:]:
                if a.scene == b.scene:
                    from convscope.units.topk import box_iou

                    assert float(box_iou(torch.tensor(a.box), torch.tensor(b.box))) <= tracker.overlap
    assert sorted(it["frame"] for it in run.items) == list(range(0, 50, 2))
