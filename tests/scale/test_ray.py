"""``explain --ray`` and ``evaluate --ray`` on one local Ray: the local run's files, a killed actor, resuming.

One file, so that pytest-xdist (``--dist loadfile``) runs every Ray test in one worker, on one Ray.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli
from PIL import Image
from scale_helpers import ALGOS, MODEL, explain_local, output_files

from convscope.cli.main import main
from convscope.scale import ledger

# A local Ray starts a process per actor (torch, the model, an engine): seconds on an idle machine,
# minutes on a loaded one, so the Ray tests carry a long timeout and the slow marker.


def _ray(capsys, photos, out, *extra):
    return cli(capsys, "explain", "-i", photos, "-o", out, *MODEL, *ALGOS, "--save-raw", "--batch-size", "2",
               "--ray", *extra)


@pytest.fixture(scope="module")
def plain_explain(photos, tmp_path_factory):
    """A plain explain run in a fresh interpreter, started here and awaited by its test, so that it
    overlaps the Ray job's start (``ray_run`` asks for it first)."""
    out = tmp_path_factory.mktemp("plain")
    image = photos / "b" / "img0_chelsea.png"
    args = ["explain", "-i", str(image), "-o", str(out), "-q", *MODEL, "--algorithms", "gradcam"]
    code = ("import sys; from convscope.cli.main import main; "
            f"rc = main({args!r}); "
            "assert rc == 0, rc; assert 'ray' not in sys.modules, 'ray imported'; "
            "assert not any(m.startswith('convscope.scale.pipeline') for m in sys.modules); print('ok')")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_ray_missing_is_one_line_error(capsys, photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = _ray(capsys, photos, tmp_path)
    assert out.code == 2
    assert out.err.strip().splitlines()[-1] == "error: --ray needs Ray: pip install 'convscope[ray]'"


def _workers(out: Path) -> dict[int, dict]:
    """The job's workers by pid: what each wrote to ``.convscope/workers/PID`` (start cost, batches done)."""
    folder = out / ledger.LEDGER / "workers"
    found = {}
    for p in folder.glob("*") if folder.exists() else ():
        if p.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                found[int(p.name)] = json.loads(p.read_text())
    return found


@pytest.fixture(scope="module")
def ray_run(plain_explain, ray_session, photos, tmp_path_factory):
    """The one Ray job that most tests read: 2 workers, and one of them killed (SIGKILL) while it
    sleeps between two batches (``--ray-batch-delay``), so its batch in flight is retried."""
    out = tmp_path_factory.mktemp("ray") / "out"
    from convscope.cli.main import main

    err = io.StringIO()
    result: dict = {}

    def job():
        with contextlib.redirect_stderr(err):
            result["code"] = main(["explain", "-i", str(photos), "-o", str(out), *MODEL, *ALGOS, "--save-raw",
                                   "--batch-size", "2", "--ray", "--ray-workers", "2", "--ray-batch-delay", "1.5"])

    thread = threading.Thread(target=job)
    thread.start()
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and thread.is_alive() and time.monotonic() < deadline:
        busy = [pid for pid, w in _workers(out).items() if w.get("batches", 0) >= 1]
        if busy:  # it wrote a batch and sleeps before returning it: the batch is still in flight
            victim = busy[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    thread.join(600)
    assert result.get("code") == 0, err.getvalue()
    return out, err.getvalue(), victim


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ray_run_equals_local_run_item_by_item(ray_run, local_run):
    local, remote = output_files(local_run), output_files(ray_run[0])
    assert sorted(local) == sorted(remote)
    a, b = json.loads(local["report.json"]), json.loads(remote["report.json"])
    assert a == b
    assert [i["input"].split("photos/")[1] for i in a["items"]] == list((
        "a/img1_coffee.png", "a/img3_rocket.png", "a/img5_horse.png",
        "b/img0_chelsea.png", "b/img2_astronaut.png", "b/img4_camera.png"))
    for name, content in local.items():  # maps (.npy and .png), sheets, input tensors: byte for byte
        assert remote[name] == content, name


def test_without_ray_flag_nothing_imports_ray(plain_explain):
    """A plain explain run never imports Ray (a subprocess, so this session's Ray does not count)."""
    proc, out = plain_explain
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0 and stdout.strip() == "ok", stderr[-2000:]
    assert (out / "report.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bad_file_is_reported_not_fatal(ray_run):
    err = ray_run[1]
    assert "convscope: Ray: 7 image(s) in 4 batch(es) on 2 worker(s), 1 CPU each" in err
    assert "wrote 12 map(s) for 6 image(s), summary.png and" in err
    assert "warning: skipped 1 unreadable file(s):\n  zz_broken.png: corrupt image" in err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_resume_skips_what_is_written_checked_by_content(capsys, ray_run, photos, local_run, tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    shutil.copytree(photos, src)
    shutil.copytree(ray_run[0], out)

    # Edit the copied run as a stopped job and a changed dataset would leave it:
    (out / "report.json").unlink()                                         # stopped before the report
    ledger.record_path(out, "a/img3_rocket.png").unlink()                  # ... and before this record
    (src / "a" / "img1_coffee.png").write_bytes((src / "b" / "img2_astronaut.png").read_bytes())  # same name
    horse = next((out / "a" / "img5_horse").glob("gradcam_class*.png"))
    horse.write_bytes(b"damaged")                                         # a damaged output
    kept = {rel: ledger.record_path(out, rel).stat().st_mtime_ns for rel in ("b/img0_chelsea.png", "b/img4_camera.png")}

    again = cli(capsys, "explain", "-i", src, "-o", out, *MODEL, *ALGOS, "--save-raw", "--batch-size", "2",
                "--ray", "--ray-workers", "1")
    assert again.code == 0, again.err
    assert "(3 already written, checked by content)" in again.err  # chelsea, astronaut, camera
    for rel, mtime in kept.items():
        assert ledger.record_path(out, rel).stat().st_mtime_ns == mtime, rel

    reference = tmp_path / "local"
    explain_local(src, reference, "--batch-size", "2")
    got, want = output_files(out), output_files(reference)
    stale = set(got) - set(want)  # the old coffee's maps (another class): left, as a local rerun leaves them
    assert set(want) <= set(got) and stale and all(n.startswith("a/img1_coffee/") for n in stale), stale
    # the changed photo now shows the astronaut's content under the coffee's name
    report = json.loads(got["report.json"])
    coffee = next(i for i in report["items"] if i["input"].endswith("img1_coffee.png"))
    astronaut = next(i for i in report["items"] if i["input"].endswith("img2_astronaut.png"))
    assert [p["index"] for p in coffee["predictions"]] == [p["index"] for p in astronaut["predictions"]]
    # Redone items ran in smaller batches than the reference (their neighbours were skipped), and a
    # batched softmax differs in the 7th digit with the batch: values are compared to 1e-5.
    assert _rounded(report) == _rounded(json.loads(want["report.json"]))
    for name, content in want.items():
        if name.endswith(".npy"):
            a, b = np.load(io.BytesIO(got[name])), np.load(io.BytesIO(content))
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()), err_msg=name)
        elif name.endswith(".png"):
            a, b = (np.asarray(Image.open(io.BytesIO(x)), dtype=int) for x in (got[name], content))
            assert np.abs(a - b).max() <= 1, name


def _rounded(report: dict) -> dict:
    for item in report["items"]:
        for p in item["predictions"]:
            p["probability"] = round(p["probability"], 5)
    return report


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_actor_is_retried_every_item_once(ray_run, local_run):
    """The job above lost a worker mid-run: it still ends well, a replacement ran the lost batch,
    and every item is there exactly once (its files byte-equal to the local run's: the test above)."""
    out, err, victim = ray_run
    assert victim is not None, "the job ended before a worker could be killed"
    others = set(_workers(out)) - {victim}
    assert len(others) >= 2, f"no replacement worker started: workers {sorted(_workers(out))}, killed {victim}"
    report = json.loads((out / "report.json").read_text())
    assert len(report["items"]) == 6 and len({i["input"] for i in report["items"]}) == 6
    assert report == json.loads((local_run / "report.json").read_text())
    records = list((out / ledger.LEDGER / "done").glob("*.json"))
    assert len(records) == 6, records  # one ledger record per item, none twice, none lost


EVAL_ARGS = ("--algorithms", "gradcam,saliency", "--steps", "4", "--sanity-stages", "1", "--road-fractions", "0.3",
        "--batch-size", "2", "-q", *MODEL)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_evaluate_on_ray_equals_local(ray_session, photos, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    subset = photos / "a"  # three photos: one actor's start is the cost, not the items
    try:
        assert main(["evaluate", "-i", str(subset), "-o", str(tmp_path / "local"), *EVAL_ARGS]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(["evaluate", "-i", str(subset), "-o", str(tmp_path / "ray"), *EVAL_ARGS,
                 "--ray", "--ray-workers", "1"]) == 0
    local = list(csv.DictReader((tmp_path / "local" / "metrics.csv").open()))
    remote = list(csv.DictReader((tmp_path / "ray" / "metrics.csv").open()))
    assert len(local) == 3 * 3  # three photos x (gradcam, saliency, random)
    assert local == remote
    assert (tmp_path / "ray" / "summary.json").read_text() == (tmp_path / "local" / "summary.json").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_units_on_ray_equals_local_item_by_item(ray_session, tmp_path):
    """``units --ray`` (one actor) against the local ``units`` run on four 80 px photos and a byte copy
    of one of them (a near-duplicate scene across a batch boundary: the copy opens the second batch),
    in three batches: units.json equal channel by channel and entry by entry (order and ties
    included), the same patches, pages and meta.json."""
    from skimage import data

    src = tmp_path / "photos"
    src.mkdir()
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        img = Image.fromarray(getattr(data, name)())
        img.thumbnail((80, 80))
        img.save(src / f"{name}.png")
    shutil.copy(src / "chelsea.png", src / "chelsea_again.png")  # listing: astronaut, chelsea | chelsea_again, ...
    args = ("-i", str(src), *MODEL, "--top-k", "3", "--batch-size", "2", "-q")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count of a 1-CPU actor: equal float sums
    try:
        assert main(["units", *args, "-o", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(["units", *args, "-o", str(tmp_path / "ray"), "--ray", "--ray-workers", "1"]) == 0
    local, remote = (json.loads((tmp_path / d / "units.json").read_text()) for d in ("local", "ray"))
    assert remote["model"] == local["model"] and list(remote["layers"]) == list(local["layers"])
    for layer, rows in local["layers"].items():
        assert [r["channel"] for r in remote["layers"][layer]] == [r["channel"] for r in rows]
        for want, got in zip(rows, remote["layers"][layer], strict=True):
            assert got["top"] == want["top"], (layer, want["channel"])
    tops = [r["top"] for rows in local["layers"].values() for r in rows]
    assert all(len(t) == 3 for t in tops) and any(len({e["source"] for e in t}) == 3 for t in tops)
    # the copy is the same scene at the same places with the same scores: it never displaces its original
    assert not any(e["source"] == "chelsea_again.png" for t in tops for e in t)
    a, b = output_files(tmp_path / "local"), output_files(tmp_path / "ray")
    state = ".units/state.pt"
    assert sorted(a) == sorted(b) and state in a
    for name in a:  # patches (.jpg), pages, meta.json (per-channel means), units.json: byte for byte
        if name != state:
            assert b[name] == a[name], name
