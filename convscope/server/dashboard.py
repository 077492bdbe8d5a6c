"""What one dashboard is made of, and how to assemble it from an engine and a source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope.request import ViewRequest
from convscope.server import protocol
from convscope.server.lanes import Lanes
from convscope.server.pipeline import Pipeline, make_net_probe
from convscope.server.security import Guard

if TYPE_CHECKING:
    from convscope.engine.seams import FrameEngine
    from convscope.sources.types import FrameSource


@dataclass
class Dashboard:
    """Everything the app serves.

    Attributes:
        pipeline: the engine thread (started and stopped with the app).
        space: what selections may name.
        hello: the first message of every viewer (see :func:`protocol.hello_message`).
        guard: token / Host / Origin checks.
        resolve: validates a request against the model before it is accepted (``Engine.resolve``).
        on_startup: called once the app runs (the CLI prints the URL there).
    """

    pipeline: Pipeline
    space: protocol.ModelSpace
    hello: dict
    guard: Guard
    resolve: Callable[[ViewRequest], Any] | None = None
    on_startup: Callable[[], None] | None = None
    recorder: Any = None  # recording.Recorder: the record button (None: no recordings)
    quota: Any = None  # recording.Quota: the snapshot and recording folders' disk limit
    units: Any = None  # the unit explorer's UnitsSession (issue 15), None: off


def algorithm_menu() -> list[dict]:
    """The UI's algorithm list, straight from the registry (never written twice)."""
    from convscope import algorithms

    return [
        {"name": a.name, "title": a.title, "summary": a.summary, "target_role": a.target_role,
         "uses_layer": bool(getattr(a, "uses_layer", False)),
         "display": getattr(a, "display", None)}  # heatmap / magnitude: colormapped (the page draws a colour bar)
        for a in algorithms.all()
    ]


#: The options the page offers as controls (the rest are accepted on the wire but not shown).
_OPTION_TITLES = {
    "steps": ("IG steps", "Integrated Gradients: interpolation steps (rows per frame)"),
    "samples": ("SmoothGrad samples", "SmoothGrad: noisy copies (rows per frame)"),
    "top_channels": ("CAM channels", "Score-CAM and Ablation-CAM: the K channels of largest mean activation (empty: all)"),
    "aug_smooth": ("aug smooth", "every CAM averaged over flips and brightness changes (6 rows per frame)"),
    "eigen_smooth": ("eigen smooth", "every CAM as the first principal component of its weighted activations"),
}


def option_menu() -> dict[str, dict]:
    """The algorithm options a page may set: default, type, bounds (:data:`protocol.OPTION_BOUNDS`)."""
    import dataclasses

    from convscope.algorithms.options import Options

    defaults = Options()
    out = {}
    for name, bounds in protocol.OPTION_BOUNDS.items():
        title, help_text = _OPTION_TITLES.get(name, (name.replace("_", " "), ""))
        entry = {"default": getattr(defaults, name), "type": bounds[0].__name__, "title": title, "help": help_text,
                 "show": name in _OPTION_TITLES}
        if len(bounds) == 3:
            entry.update(min=bounds[1], max=bounds[2])
        out[name] = entry
    assert set(out) <= {f.name for f in dataclasses.fields(Options)}
    return out


def make_dashboard(engine: FrameEngine, source: FrameSource, guard: Guard, *, quality: int = 80,
                   on_startup: Callable[[], None] | None = None, net_probe: bool = True,
                   snapshots: Path | None = None, recordings: Path | None = None,
                   quota_mb: float | None = None, background: Callable[[], FrameEngine] | None = None,
                   background_share: float = 0.2, units: bool = True, units_dir: Path | None = None,
                   featvis: bool = True) -> Dashboard:
    """Assemble a dashboard for a loaded :class:`~convscope.engine.Engine` and an open source.

    ``background`` builds the engine of the background lane, where maps that need extra input
    rows run without stalling the frame loop (:mod:`convscope.server.lanes`); ``None``: every
    map every frame.

    Raises:
        RequestError, LayerError: the model cannot show the default selection.
    """
    menu = algorithm_menu()
    space = protocol.ModelSpace.from_layers(engine.layers, engine.num_classes, tuple(m["name"] for m in menu))
    state = protocol.ViewState.initial(space)
    engine.resolve(state.to_request())
    info = source.info
    hello = protocol.hello_message(
        engine.bundle.name, engine.layers, engine.labels, menu,
        {"kind": info.kind, "spec": info.spec, "width": info.width, "height": info.height,
         "fps": info.fps, "live": info.live},
        space,
    )
    hello["options"] = option_menu()
    hello["playback"] = source.describe() if getattr(source, "seekable", False) else None
    probe = make_net_probe(engine.bundle) if net_probe else None
    lanes = Lanes(engine, background, background_share)
    pipeline = Pipeline(engine, source, state, quality=quality, net_probe=probe, lanes=lanes)
    pipeline.snapshot_dir = snapshots  # a Path, or None: no snapshots
    pipeline.snapshot_info = {"model": engine.bundle.name, "source": hello["source"]}
    hello["snapshots"] = snapshots is not None
    from convscope import views
    from convscope.server.recording import DEFAULT_QUOTA_MB, Quota, Recorder

    folder = recordings or snapshots
    quota = Quota(DEFAULT_QUOTA_MB if quota_mb is None else quota_mb, snapshots, recordings)
    recorder = Recorder(folder, pipeline.player, quota) if folder is not None else None
    pipeline.recorder = recorder
    # what a recording may tile: every view that draws a picture, and each algorithm's map
    panels = [v.name for v in views.all() if v.kind != "bars"] + [f"map:{m['name']}" for m in menu]
    hello["recordings"] = None if recorder is None else {"panels": panels, "every_frame": pipeline.player is not None}
    session = _units_session(engine, source, units_dir, featvis) if units else None
    hello["units"] = None if session is None else {
        "dataset": str(units_dir) if units_dir is not None else None,
        "dataset_layers": session.load(units_dir) if units_dir is not None else [],
        "featvis": session.featvis is not None}
    return Dashboard(pipeline, space, hello, guard, engine.resolve, on_startup, recorder, quota, units=session)


def _units_session(engine: FrameEngine, source: FrameSource, units_dir: Path | None, featvis: bool) -> Any:
    """The unit explorer: a session the ``units`` view feeds (bound to this engine's layers)."""
    from convscope.units.session import FeatVisWorker, UnitsSession
    from convscope.views.units import bind

    layers = getattr(engine, "layer_info", None)
    if layers is None:  # an engine without the layer table (test doubles): no unit explorer
        return None
    worker = FeatVisWorker(engine.bundle) if featvis else None
    session = UnitsSession(engine.bundle, layers, featvis=worker)
    session.follow(source)
    bind(layers, session)
    return session
