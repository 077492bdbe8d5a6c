"""What a benchmark run measures: the view set, how long, in how many rounds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from convscope.errors import UsageError
from convscope.request import ViewRequest

#: View set name -> (panels, algorithms). ``None`` keeps the live dashboard's default.
VIEW_SETS: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...] | None]] = {
    "full": (None, None),
    "activations": (None, ()),
    "gradcam": (None, ("gradcam",)),
    "guided": (None, ("guided_backprop",)),
}


def dashboard_request(layers: list, num_classes: int, selection: str | None = None) -> ViewRequest:
    """The request a freshly opened live dashboard sends, so the benchmark measures what users run.

    Args:
        layers: the model's ``LayerInfo`` list (``Engine.layers``).
        num_classes: length of the model's label list.
        selection: what guided backprop explains, if not the dashboard's default (``class``: the
            Grad-CAM class, so one guided backward serves guided backprop and guided Grad-CAM;
            ``channel``: the selected channel of the default layer, a second guided backward).
    """
    from convscope import algorithms
    from convscope.server import protocol

    space = protocol.ModelSpace.from_layers(layers, num_classes, tuple(algorithms.names()))
    state = protocol.ViewState.initial(space)
    if selection is not None:
        if selection not in protocol.SELECTIONS:
            raise UsageError(f"unknown guided-backprop source {selection!r}; choose one of "
                             f"{', '.join(protocol.SELECTIONS)}")
        state = dataclasses.replace(state, selection=selection)
    return state.to_request()


def view_request(views: str, base: ViewRequest | None = None) -> ViewRequest:
    """The :class:`ViewRequest` of a named view set, derived from ``base`` (see :func:`dashboard_request`).

    ``full`` is ``base`` as it is, by default (activation grid of the default layer, zoomed channel,
    FC map, top-5, Grad-CAM, guided backprop and guided Grad-CAM); ``activations`` keeps the
    panels and drops every algorithm; ``gradcam`` and ``guided`` keep the panels plus one.
    """
    if views not in VIEW_SETS:
        raise UsageError(f"unknown view set {views!r}; choose one of {', '.join(VIEW_SETS)}")
    request = base if base is not None else ViewRequest()
    panels, algorithms = VIEW_SETS[views]
    changes: dict = {}
    if panels is not None:
        changes["panels"] = panels
    if algorithms is not None:
        changes["algorithms"] = algorithms
    return dataclasses.replace(request, **changes)


@dataclass(frozen=True)
class BenchConfig:
    """How long and how to measure.

    Attributes:
        views: the view set name (see :data:`VIEW_SETS`).
        seconds: total timed seconds, both loops together (ignored when ``frames`` is set).
        frames: timed frames per loop, instead of a duration.
        rounds: how many times the loops take turns; more rounds cancel slower drift.
        warmup: untimed frames per loop before the first round.
    """

    views: str = "full"
    seconds: float = 20.0
    frames: int | None = None
    rounds: int = 10
    warmup: int = 3

    def __post_init__(self) -> None:
        if self.views not in VIEW_SETS:
            raise UsageError(f"unknown view set {self.views!r}; choose one of {', '.join(VIEW_SETS)}")
        if self.frames is None and not self.seconds > 0:
            raise UsageError(f"--seconds must be positive, got {self.seconds}")
        if self.frames is not None and self.frames < 1:
            raise UsageError(f"--frames must be at least 1, got {self.frames}")
        if self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {self.rounds}")
        if self.warmup < 0:
            raise UsageError(f"--warmup cannot be negative, got {self.warmup}")

    def round_budget(self, index: int) -> tuple[float | None, int | None]:
        """``(seconds, frames)`` one loop gets in round ``index``: exactly one is not ``None``."""
        if self.frames is None:
            return self.seconds / (2 * self.rounds), None
        rounds = min(self.rounds, self.frames)
        if index >= rounds:
            return None, 0
        share, extra = divmod(self.frames, rounds)
        return None, share + (1 if index < extra else 0)
