"""``convscope bench`` end to end with a tiny frame count: what it reports, never how fast."""

from __future__ import annotations

import json

import pytest
import torch

from convscope import algorithms
from convscope.cli.main import main
from convscope.models import discover_layers, load_model
from convscope.server.protocol import ModelSpace, ViewState

ENGINE_STAGES = {"preprocess", "forward", "backward", "algorithms", "render", "copy"}
# one thread: on a shared 2-core machine two OpenMP threads can stall behind other processes
TINY = ["--frames", "2", "--rounds", "2", "--warmup", "1", "--source-frames", "3", "--threads", "1"]


def initial_selection() -> str:
    """What guided backprop explains in a freshly opened live dashboard (the server decides)."""
    layers = discover_layers(load_model("resnet18", weights="random"))
    return ViewState.initial(ModelSpace.from_layers(layers, 1000, tuple(algorithms.names()))).selection


def bench_json(capsys, *args: str) -> dict:
    code = main(["bench", *TINY, "--json", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("views", ["full", "activations", "guided"])
def test_json_report_offline_model(capsys, views):
    report = bench_json(capsys, "--views", views)

    assert {"model", "device", "views", "network_fps", "dashboard_fps", "ratio", "stages", "memory"} <= set(report)
    assert report["model"] == "efficientnet_lite0" and report["device"] == "cpu" and report["views"] == views
    assert report["frames"] == {"network": 2, "dashboard": 2}
    # what a freshly opened dashboard shows
    assert report["selection"] == (None if views == "activations" else initial_selection())
    assert report["network_fps"] > 0 and report["dashboard_fps"] > 0
    assert report["ratio"] == pytest.approx(report["dashboard_fps"] / report["network_fps"], rel=2e-3)
    stages = report["stages"]
    assert ENGINE_STAGES | {"encode"} <= set(stages)
    assert all(v >= 0 for v in stages.values())
    assert stages["encode"] > 0 and stages["forward"] > 0
    # as in the live server, each frame is encoded on a worker thread while the next one computes
    assert report["encode_thread"] is True and stages["encode_wait"] >= 0
    assert set(report["network_stages"]) == {"preprocess", "forward", "top1"}
    # a frame costs at least its slowest stage
    assert report["frame_ms"]["dashboard"] >= max(stages.values())
    memory = report["memory"]
    assert {"rss_start_mb", "rss_end_mb", "rss_max_mb"} <= set(memory)
    assert memory["rss_max_mb"] >= max(memory["rss_start_mb"], memory["rss_end_mb"]) > 0
    assert not any(k.startswith("cuda") for k in memory)
    # sampled after warm-up and after each of the 2 rounds
    assert len(memory["rss_trace_mb"]) == 3 and memory["rss_trace_mb"][-1] == memory["rss_end_mb"]
    # the dashboard's engine runs its folded channels_last copy; the network loop the model as loaded
    assert report["engine"] == "49 BatchNorm folded into convs, channels_last"


def test_no_optimize_runs_the_engine_on_the_model_as_loaded(capsys):
    report = bench_json(capsys, "--views", "activations", "--no-optimize")
    assert report["engine"] == "plain module"
    assert report["dashboard_fps"] > 0


def test_video_source_and_text_table(capsys, h264_mp4):
    threads = torch.get_num_threads()
    code = main(["bench", *TINY, "--source", str(h264_mp4), "-m", "resnet18", "--weights", "random",
                 "--views", "full", "--gb-source", "channel"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "resnet18 (random weights) on cpu, views full (guided backprop of the channel), 3 frames from" in out
    assert "ratio (dashboard / network FPS):" in out
    assert "dashboard stages (median ms):" in out and "encode" in out
    assert "memory: RSS" in out
    assert "dashboard engine: 20 BatchNorm folded into convs, channels_last; network loop: the model as loaded" in out
    assert "2 rounds, 1 threads" in out and torch.get_num_threads() == threads  # restored afterwards


def test_inline_encode_has_no_wait_stage(capsys):
    report = bench_json(capsys, "--views", "activations", "--inline-encode")
    assert report["encode_thread"] is False
    assert report["stages"]["encode"] > 0 and "encode_wait" not in report["stages"]
    assert report["ratio"] == pytest.approx(report["dashboard_fps"] / report["network_fps"], rel=2e-3)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--frames", "0"], 2, "--frames must be at least 1"),
        (["--views", "all"], 2, "invalid choice"),
        (["--frames", "3", "--seconds", "4"], 2, "not allowed with argument"),
        (["--frames", "1", "--source", "/nonexistent/clip.mp4"], 1, "error:"),
        (["--frames", "1", "--threads", "0"], 2, "--threads must be at least 1"),
    ],
)
def test_bad_input_is_one_line(capsys, argv, code, message):
    assert main(["bench", *argv]) == code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_algorithm_costs(capsys):
    """``--algorithms``: the bare network, the bare engine and each named algorithm, with its cost
    as a multiple of the network's median (a tiny seeded model, one frame, one round)."""
    code = main(["bench", "--algorithms", "gradcam,integrated_gradients,scorecam", "--rounds", "1", "--warmup", "0",
                 "--source-frames", "1", "--threads", "1", "--steps", "3", "--top-channels", "2", "--json",
                 "-m", "resnet18", "--weights", "random", "--input-size", "64"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert list(report["cost"]) == ["network", "engine", "gradcam", "integrated_gradients", "scorecam"]
    assert report["cost"]["network"] == 1.0 and all(v > 0 for v in report["median_ms"].values())
    assert report["options"] == {"top_channels": 2, "steps": 3, "samples": 32}
