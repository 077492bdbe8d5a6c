"""What one dashboard is made of, and how to assemble it from an engine and a source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope.request import ViewRequest
from convscope.server import protocol
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


def make_dashboard(engine: FrameEngine, source: FrameSource, guard: Guard, *, quality: int = 80,
                   on_startup: Callable[[], None] | None = None, net_probe: bool = True,
                   snapshots: Path | None = None, units: bool = True, units_dir: Path | None = None,
                   featvis: bool = True) -> Dashboard:
    """Assemble a dashboard for a loaded :class:`~convscope.engine.Engine` and an open source.

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
    hello["playback"] = source.describe() if getattr(source, "seekable", False) else None
    probe = make_net_probe(engine.bundle) if net_probe else None
    pipeline = Pipeline(engine, source, state, quality=quality, net_probe=probe)
    pipeline.snapshot_dir = snapshots  # a Path, or None: no snapshots
    pipeline.snapshot_info = {"model": engine.bundle.name, "source": hello["source"]}
    hello["snapshots"] = snapshots is not None
    session = _units_session(engine, source, units_dir, featvis) if units else None
    hello["units"] = None if session is None else {
        "dataset": str(units_dir) if units_dir is not None else None,
        "dataset_layers": session.load(units_dir) if units_dir is not None else [],
        "featvis": session.featvis is not None}
    return Dashboard(pipeline, space, hello, guard, engine.resolve, on_startup, units=session)


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
