"""The unit explorer's live side: per-session trackers fed with activations the pipeline captured.

Not wired into the server yet (the engine and the dashboard's panels are being rewritten as view
plugins, issue 12). The API takes what a view will have: a captured ``B x C x h x w`` activation
of a layer, the frame ids, and the frames as the model saw them (0..255, before normalisation).

* :meth:`LiveUnits.observe` updates the layer's tracker (created on first use: receptive field,
  ``k`` slots, crops, a histogram ring);
* :meth:`LiveUnits.channel` is what a panel shows for a selected channel: its top patches as JPEG
  data URLs with score, frame id and box, and the histogram of its per-frame maxima;
* :meth:`LiveUnits.overview` is the layer overview: session mean, this frame's maximum, never
  active (dead) channels, and the channel order by either;
* :meth:`LiveUnits.load` reads a ``convscope units`` OUTDIR (``units.json``) to show dataset-wide
  top patches instead (``--units OUTDIR``), as the same :meth:`channel` answer.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from convscope.models.bundle import ModelBundle
from convscope.models.layers import LayerInfo
from convscope.units.dataset import slug
from convscope.units.receptive_field import ReceptiveField, receptive_field
from convscope.units.topk import TopKTracker


def _data_url(patch: np.ndarray, quality: int = 85) -> str:
    buf = io.BytesIO()
    Image.fromarray(patch).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


class LiveUnits:
    """Per-session unit trackers, one per layer looked at.

    Args:
        bundle: the model (for receptive fields).
        k: patches per channel.
        patch: side of the stored crops.
        history: frames of per-frame maxima kept for the histogram.
    """

    def __init__(self, bundle: ModelBundle, k: int = 9, patch: int = 48, history: int = 512) -> None:
        self.bundle, self.k, self.patch, self.history = bundle, k, patch, history
        self.trackers: dict[str, TopKTracker] = {}
        self.rfs: dict[str, ReceptiveField] = {}
        self.dataset: dict | None = None
        self.dataset_dir: Path | None = None
        self._lock = threading.Lock()

    def tracker(self, layer: LayerInfo) -> TopKTracker:
        with self._lock:
            if layer.name not in self.trackers:
                rf = self.rfs.get(layer.name) or receptive_field(self.bundle, layer)
                self.rfs[layer.name] = rf
                self.trackers[layer.name] = TopKTracker(int(layer.channels or 0), self.k, rf=rf, patch=self.patch,
                                                        device=self.bundle.device, history=self.history)
            return self.trackers[layer.name]

    def observe(self, layer: LayerInfo, acts: torch.Tensor, frame_ids: Sequence[int] | torch.Tensor,
                images: torch.Tensor | None = None) -> int:
        """One batched update for every channel of ``layer``; returns how many candidates were kept."""
        return self.tracker(layer).update(acts, frame_ids, images=images)

    def channel(self, layer: str, channel: int, bins: int = 32) -> dict:
        """The selected channel's top patches (best first) and histogram, JSON-ready."""
        if self.dataset is not None and layer in self.dataset["layers"]:
            return self._dataset_channel(layer, channel)
        tracker = self.trackers.get(layer)
        if tracker is None:
            return {"layer": layer, "channel": channel, "top": [], "histogram": None, "source": "session"}
        entries = tracker.entries(channel)
        patches = tracker.patches_of(channel).permute(0, 2, 3, 1).cpu().numpy()
        counts, lo, hi = tracker.histogram(channel, bins)
        return {"layer": layer, "channel": channel, "source": "session",
                "top": [{"score": e.score, "frame": e.frame, "box": list(e.box), "position": list(e.position),
                         "image": _data_url(p)} for e, p in zip(entries, patches, strict=True)],
                "histogram": {"counts": counts, "min": lo, "max": hi}}

    def overview(self, layer: str, order: str = "mean") -> dict:
        """Per channel: session mean of the maximum, this frame's maximum, ever active; and an order."""
        tracker = self.trackers.get(layer)
        if tracker is None:
            return {"layer": layer, "frames": 0, "mean": [], "last": [], "dead": [], "order": []}
        mean, last = tracker.mean().cpu(), tracker.last.cpu()
        key = mean if order == "mean" else torch.nan_to_num(last, nan=float("-inf"))
        return {"layer": layer, "frames": tracker.frames, "mean": mean.tolist(), "last": last.tolist(),
                "dead": torch.nonzero(~tracker.active.cpu()).flatten().tolist(),
                "order": torch.argsort(key, descending=True, stable=True).tolist()}

    # -- a dataset run instead of the session --------------------------------------------------
    def load(self, outdir: str | Path) -> None:
        """Show the top patches of a ``convscope units`` OUTDIR for the layers it covers."""
        outdir = Path(outdir)
        self.dataset = json.loads((outdir / "units.json").read_text())
        self.dataset_dir = outdir

    def _dataset_channel(self, layer: str, channel: int) -> dict:
        rows = {r["channel"]: r for r in self.dataset["layers"][layer]}  # type: ignore[index]
        row = rows.get(channel, {"top": []})
        top = []
        for rank, t in enumerate(row["top"]):
            path = self.dataset_dir / "patches" / slug(layer) / f"c{channel:04d}_{rank}.jpg"  # type: ignore[operator]
            image = ("data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()) if path.exists() else None
            top.append({**t, "image": image})
        return {"layer": layer, "channel": channel, "source": "dataset", "top": top, "histogram": None}
