"""``Result``: what one frame produced, already on the host: one :class:`Panel` per view.

``panels`` maps each view's name to its panel, in the order the views ran; the named accessors
(``input``, ``predictions``, ``activations``, ``channel``, ``fc``, ``maps``) read the built-in
views' panels for code that wants one of them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convscope.views.activations import ActivationGrid
from convscope.views.base import Panel
from convscope.views.channel import Zoom
from convscope.views.fc import FCMap
from convscope.views.input import InputImage
from convscope.views.maps import MapOutput
from convscope.views.predictions import Prediction, Predictions


@dataclass
class Result:
    """Everything one ``Engine.run`` call produced for one frame; every array is host memory.

    Attributes:
        panels: view name -> panel (``input``, ``predictions``, ``activations``, ``channel``,
            ``fc``, ``map:<algorithm>``, and any plugin view's).
        input_tensor: 1x3xHxW float32, the exact model input, only with ``keep_raw``.
        timings: seconds per engine stage.
        costs: seconds each view cost on its own (its algorithm, extra rows and drawing), by view
            name; empty where the host clock cannot see device work (CUDA without
            ``sync_timings``). The shared forward and backward passes are in ``timings``.
    """

    panels: dict[str, Panel] = field(default_factory=dict)
    input_tensor: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)

    def _panel(self, name: str, kind: type) -> object | None:
        panel = self.panels.get(name)
        return panel if isinstance(panel, kind) else None

    @property
    def input(self) -> np.ndarray:
        """HxWx3 uint8: the model input as the network sees it (after resize/crop)."""
        panel = self._panel("input", InputImage)
        assert isinstance(panel, InputImage), "every Result has an input panel"
        return panel.image

    @property
    def predictions(self) -> list[Prediction]:
        panel = self._panel("predictions", Predictions)
        return panel.items if isinstance(panel, Predictions) else []

    @property
    def activations(self) -> ActivationGrid | None:
        panel = self._panel("activations", ActivationGrid)
        return panel if isinstance(panel, ActivationGrid) else None

    @property
    def zoom(self) -> Zoom | None:
        panel = self._panel("channel", Zoom)
        return panel if isinstance(panel, Zoom) else None

    @property
    def channel(self) -> np.ndarray | None:
        """The selected channel enlarged, HxWx3 uint8."""
        zoom = self.zoom
        return zoom.image if zoom is not None else None

    @property
    def channel_index(self) -> int | None:
        zoom = self.zoom
        return zoom.index if zoom is not None else None

    @property
    def channel_empty(self) -> str | None:
        """Why the zoomed channel is blank (all zero, constant, inf/nan); None when it shows something."""
        zoom = self.zoom
        return zoom.empty if zoom is not None else None

    @property
    def fc(self) -> FCMap | None:
        panel = self._panel("fc", FCMap)
        return panel if isinstance(panel, FCMap) else None

    @property
    def maps(self) -> dict[str, MapOutput]:
        """Each algorithm's map, by algorithm name."""
        return {p.algorithm: p for p in self.panels.values() if isinstance(p, MapOutput)}
