"""Snapshots (issue 14, item 3): ``{"type": "snapshot"}`` writes the current moment, the page can
download it as a zip, and ``convscope explain`` on the saved source frame reproduces the saved
raw maps (the independent path: the stills CLI, from a PNG on disk)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from PIL import Image
from server_helpers import BASE_URL, WS, Built, receive_frame, receive_json
from server_models import SPEC
from starlette.testclient import TestClient

from convscope.cli.main import main
from convscope.server.app import create_app
from convscope.server.dashboard import make_dashboard
from convscope.server.security import Guard


def test_snapshot_writes_every_panel_and_explain_reproduces_the_maps(tmp_path, capsys):
    built = Built()
    root = tmp_path / "snaps"
    try:
        dash = make_dashboard(built.engine, built.source, Guard(None, True), snapshots=root)
        with TestClient(create_app(dash), base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
            assert receive_json(ws, "hello")["snapshots"] is True
            ws.send_text(json.dumps({"type": "view", "channel": 3, "algorithms": ["gradcam", "guided_backprop", "saliency"]}))
            while receive_frame(ws)[0]["channel"]["index"] != 3:
                pass
            ws.send_text(json.dumps({"type": "snapshot", "extra": 1}))
            assert "unknown field" in receive_json(ws, "error")["message"]
            ws.send_text(json.dumps({"type": "snapshot"}))
            reply = receive_json(ws, "snapshot")
            folder = root / reply["name"]
            assert reply["url"] == f"/snapshots/{reply['name']}.zip"
            response = client.get(reply["url"])
            assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
            names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
            assert client.get("/snapshots/..%2F..%2Fetc.zip").status_code == 404
            assert client.get("/snapshots/nope.zip").status_code == 404
    finally:
        built.close()

    report = json.loads((folder / "snapshot.json").read_text())
    assert sorted(names) == sorted(f"{reply['name']}/{p.name}" for p in folder.iterdir())
    assert report["model"] == built.bundle.name and report["source"]["kind"] == "demo"
    assert report["selection"]["channel"] == 3 and report["selection"]["cam_layer"] == "relu2"
    assert set(report["maps"]) == {"gradcam", "guided_backprop", "saliency"} == set(reply["maps"])
    assert len(report["predictions"]) == 5 and "index" in report["frame"]
    for panel in ("input", "activations", "channel", "fc"):  # every panel, PNG at full resolution
        assert (folder / report["panels"][panel]["png"]).is_file()
    grid = report["panels"]["activations"]
    assert Image.open(folder / grid["png"]).size[0] == report["request"]["mosaic_width"]
    assert np.load(folder / grid["npy"]).shape[0] == grid["channels"] == 16
    top1 = report["predictions"][0]["index"]

    out = tmp_path / "explain"
    assert main(["explain", "-i", str(folder / report["files"]["source"]), "-o", str(out), "-m", SPEC,
                 "--input-size", "64", "--layer", report["selection"]["cam_layer"], "--class", str(top1),
                 "--algorithms", "gradcam,guided_backprop,saliency", "--save-raw", "-q"]) == 0
    capsys.readouterr()
    explained = json.loads((out / "report.json").read_text())["items"][0]
    np.testing.assert_allclose(np.load(out / explained["input_tensor"]),
                               np.load(folder / report["files"]["input_tensor"]), atol=1e-6)
    for output in explained["outputs"]:
        saved = np.load(folder / report["maps"][output["algorithm"]]["npy"])
        ours = np.load(out / output["raw"])
        scale = float(np.abs(saved).max())
        np.testing.assert_allclose(ours, saved, rtol=1e-4, atol=1e-5 * scale, err_msg=output["algorithm"])


def test_snapshot_refused_without_a_folder(client):
    with client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "snapshot"}))
        assert "--snapshots" in receive_json(ws, "error")["message"]
