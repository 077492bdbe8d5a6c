"""The single-pass engine: one forward and the fewest backward passes per frame, all views.

``Engine`` is imported lazily so that algorithm plugins can import the request types without an
import cycle (the engine itself imports the algorithm registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convscope.engine.request import PANELS, Target, ViewRequest
from convscope.engine.result import FCMap, MapOutput, Mosaic, Prediction, Result

if TYPE_CHECKING:
    from convscope.engine.engine import Engine

__all__ = [
    "PANELS",
    "Engine",
    "FCMap",
    "MapOutput",
    "Mosaic",
    "Prediction",
    "Result",
    "Target",
    "ViewRequest",
]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from convscope.engine.engine import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
