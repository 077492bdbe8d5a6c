"""Trust, live: the backend of the dashboard's sanity toggle and per-frame deletion score.

:class:`LiveTrust` holds a copy of the model with its top ``top_layers`` conv/linear layers
re-initialised (seeded, :func:`convscope.evaluate.randomize.randomize_top`) and an engine on it.
For the current frame, :meth:`LiveTrust.randomized` computes the same request on that copy (the
maps to show next to the real ones; a map that looks the same does not explain the model), and
:meth:`LiveTrust.deletion_scores` gives each map's deletion AUC for the frame (one batch of
``steps + 1`` perturbed inputs per map). Nothing here touches the server or the page: they call
these two methods.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from convscope.engine import Engine, Result, ViewRequest
from convscope.evaluate import metrics
from convscope.evaluate.evaluator import importance
from convscope.evaluate.randomize import parametrised_layers, randomize_top
from convscope.models import ModelBundle


class LiveTrust:
    def __init__(self, bundle: ModelBundle, top_layers: int = 1, seed: int = 0) -> None:
        layers = parametrised_layers(bundle.module)
        self.top_layers = max(1, min(top_layers, len(layers)))
        self.bundle = bundle
        copy = randomize_top(bundle.module, layers, self.top_layers, seed)
        self.engine = Engine(dataclasses.replace(bundle, module=copy,
                                                 name=f"{bundle.name} (top {self.top_layers} layers randomised)"))

    def close(self) -> None:
        self.engine.close()

    def randomized(self, frame: np.ndarray, request: ViewRequest, result: Result | None = None) -> Result:
        """The request's maps on the randomised copy, for the class the real model explained.

        With ``result`` (the real model's result for this frame), open class targets are pinned to
        its top-1, so both maps explain the same class.
        """
        req = request
        if result is not None and result.predictions:
            top = result.predictions[0].index
            pin = {}
            for field in ("cam_target", "selection_target"):
                t = getattr(request, field)
                if t.kind == "class" and t.index is None:
                    pin[field] = dataclasses.replace(t, index=top)
            req = dataclasses.replace(request, **pin)
        return self.engine.run(frame, req)

    def deletion_scores(self, result: Result, steps: int = 10) -> dict[str, float]:
        """Deletion AUC of each map of ``result`` for its frame (needs ``keep_raw=True``).

        The score is the softmax probability of the result's top-1 class from the real model.
        """
        if result.input_tensor is None:
            raise ValueError("deletion_scores needs a result computed with ViewRequest(keep_raw=True)")
        module = self.bundle.module
        device = next(module.parameters()).device
        x = torch.as_tensor(result.input_tensor).to(device)
        h, w = x.shape[2:]
        target = result.predictions[0].index

        def score(batch: torch.Tensor, i: int | None) -> torch.Tensor:
            with torch.inference_mode():
                return torch.softmax(module(batch).float(), 1)[:, target]

        out = {}
        for name, m in result.maps.items():
            if m.raw is None:
                continue
            auc, _ = metrics.deletion(score, x, importance(m.raw, (h, w))[None].to(device), steps)
            out[name] = float(auc[0])
        return out
