"""Interleaving, budgets and summaries of the benchmark loops, with real frames and no timing asserts."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from convscope import algorithms, views
from convscope.bench.config import BenchConfig, dashboard_request, view_request
from convscope.bench.rounds import run_rounds
from convscope.bench.stats import stage_medians, summarise
from convscope.errors import UsageError
from convscope.models import discover_layers, load_model
from convscope.server.protocol import ModelSpace, ViewState
from convscope.vocabulary import Target


class Recorder:
    """A loop that remembers which frame it got and when, in a log shared with the other loop."""

    def __init__(self, name: str, log: list[tuple[str, int]]) -> None:
        self.name = name
        self.log = log

    def step(self, frame: np.ndarray) -> dict[str, float]:
        self.log.append((self.name, int(frame[0, 0, 0])))
        return {"work": float(frame.mean()) * 1e-6}


def frames_marked(n: int) -> list[np.ndarray]:
    """Copies of the cat photo whose first pixel carries the frame number."""
    base = skimage.data.chelsea()
    out = []
    for i in range(n):
        f = base.copy()
        f[0, 0, 0] = i
        out.append(f)
    return out


def test_frame_budget_is_split_over_rounds_in_alternating_order():
    log: list[tuple[str, int]] = []
    a, b = Recorder("a", log), Recorder("b", log)
    config = BenchConfig(frames=7, rounds=3, warmup=2)
    samples = run_rounds([a, b], frames_marked(4), config)

    assert [config.round_budget(r) for r in range(3)] == [(None, 3), (None, 2), (None, 2)]
    assert len(samples["a"].totals) == len(samples["b"].totals) == 7
    assert [n for n, _ in samples["a"].rounds] == [3, 2, 2]
    # warm-up: a twice, then b twice; then rounds a b | b a | a b
    names = "".join(name for name, _ in log)
    assert names == "aabb" + "aaabbb" + "bbaa" + "aabb"
    # both loops walk the same frame sequence, wrapping around the 4 decoded frames
    seen_a = [i for name, i in log if name == "a"]
    seen_b = [i for name, i in log if name == "b"]
    assert seen_a == seen_b == [0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_more_rounds_than_frames_leaves_later_rounds_empty():
    log: list[tuple[str, int]] = []
    config = BenchConfig(frames=2, rounds=5, warmup=0)
    samples = run_rounds([Recorder("a", log), Recorder("b", log)], frames_marked(3), config)
    assert [n for n, _ in samples["a"].rounds] == [1, 1, 0, 0, 0]
    assert len(log) == 4


def test_time_budget_runs_at_least_one_frame_per_round():
    log: list[tuple[str, int]] = []
    config = BenchConfig(seconds=1e-9, rounds=4, warmup=0)
    samples = run_rounds([Recorder("a", log), Recorder("b", log)], frames_marked(2), config)
    assert [n for n, _ in samples["b"].rounds] == [1, 1, 1, 1]


def test_hooks_run_after_warmup_and_after_every_round():
    events: list[str] = []
    log: list[tuple[str, int]] = []
    run_rounds([Recorder("a", log)], frames_marked(2), BenchConfig(frames=3, rounds=3, warmup=1),
               after_warmup=lambda: events.append(f"warm@{len(log)}"),
               after_round=lambda r: events.append(f"r{r}@{len(log)}"))
    assert events == ["warm@1", "r0@2", "r1@3", "r2@4"]


def test_stage_medians_and_summary():
    stages = [{"a": 1.0, "b": 4.0}, {"a": 3.0}, {"a": 2.0, "b": 6.0, "c": 1.0}]
    assert stage_medians(stages) == {"a": 2.0, "b": 5.0, "c": 1.0}
    log: list[tuple[str, int]] = []
    samples = run_rounds([Recorder("a", log)], frames_marked(2), BenchConfig(frames=5, rounds=1, warmup=0))
    s = samples["a"]
    s.totals = [0.1, 0.3, 0.2, 0.5, 0.25]
    summary = summarise(s)
    assert summary.frames == 5
    assert summary.frame_ms == pytest.approx(250.0)
    assert summary.fps == pytest.approx(4.0)
    assert summary.mean_fps == pytest.approx(5 / 1.35)


def test_view_sets():
    full = view_request("full")
    assert full.algorithms == ("gradcam", "guided_backprop", "guided_gradcam")
    assert full.panels is None and full.top_k == 5  # None: every default view, as the dashboard
    assert {"activations", "channel", "fc", "predictions"} <= set(views.defaults())
    assert view_request("activations").algorithms == ()
    assert view_request("activations").panels == full.panels
    assert view_request("gradcam").algorithms == ("gradcam",)
    assert view_request("guided").algorithms == ("guided_backprop",)
    with pytest.raises(UsageError, match="unknown view set"):
        view_request("everything")


def test_dashboard_request_is_what_a_fresh_dashboard_shows():
    layers = discover_layers(load_model("resnet18", weights="random"))
    request = dashboard_request(layers, 1000)
    # the grid on the legible middle layer (models.layers.grid_layer), Grad-CAM on the head layer
    assert (request.conv_layer, request.cam_layer, request.fc_layer) == ("layer3", "layer4", "fc")
    assert request.cam_target == Target("class", None)
    assert {"gradcam", "guided_backprop", "guided_gradcam"} <= set(request.algorithms)
    state = ViewState.initial(ModelSpace.from_layers(layers, 1000, tuple(algorithms.names())))
    assert request == state.to_request()
    assert dashboard_request(layers, 1000, "channel").selection_target == Target("channel", 0, "layer3")
    assert dashboard_request(layers, 1000, "class").selection_target == Target("class", None)
    with pytest.raises(UsageError, match="guided-backprop source"):
        dashboard_request(layers, 1000, "pixel")


@pytest.mark.parametrize("kwargs", [{"frames": 0}, {"seconds": 0}, {"rounds": 0}, {"warmup": -1}])
def test_bad_budgets_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        BenchConfig(**kwargs)


class Pipelined(Recorder):
    """A loop with pending work that must be finished before the other loop's turn."""

    def finish(self) -> None:
        self.log.append(("finish", -1))


def test_pipelined_loops_finish_before_every_other_turn():
    log: list[tuple[str, int]] = []
    run_rounds([Pipelined("a", log), Recorder("b", log)], frames_marked(2), BenchConfig(frames=2, rounds=2, warmup=1))
    names = [name for name, _ in log]
    assert names == ["a", "finish", "b", "a", "finish", "b", "b", "a", "finish"]
