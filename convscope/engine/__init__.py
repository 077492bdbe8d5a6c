"""The single-pass engine: one forward and the fewest backward passes per frame, every view.

The public names of a frame's request and result are re-exported here, so that
``from convscope.engine import Engine, ViewRequest, Target, Result`` is the one import users need.
They live below the engine (:mod:`convscope.vocabulary`, :mod:`convscope.request`,
:mod:`convscope.views`), which is what lets algorithm and view plugins import them without an
import cycle.
"""

from __future__ import annotations

from convscope.engine.engine import Engine
from convscope.request import ViewRequest
from convscope.views import Result
from convscope.views.activations import ActivationGrid
from convscope.views.channel import Zoom
from convscope.views.fc import FCMap
from convscope.views.maps import MapOutput
from convscope.views.predictions import Prediction
from convscope.vocabulary import Target

__all__ = ["Engine", "FCMap", "MapOutput", "ActivationGrid", "Prediction", "Result", "Target", "ViewRequest", "Zoom"]
