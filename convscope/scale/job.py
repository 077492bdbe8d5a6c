"""What a worker needs to redo ``convscope explain`` on its share of the items, and the worker itself.

An :class:`ExplainJob` is small and picklable: the model flags (each worker loads its own copy of
the model and holds one engine), the algorithm names and the layer and targets the driver already
resolved, so every worker asks the engine exactly what the local run asks. :class:`ExplainWorker`
runs one batch and writes it with the local run's own writer, so the files and report entries
are the same by construction.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from convscope.engine import Target, ViewRequest
from convscope.stills.inputs import Item
from convscope.stills.outputs import Layout

#: The model flags of ``add_model_options``, forwarded to every worker.
MODEL_FLAGS = ("model", "weights", "trust_pickle", "labels", "input_size", "mean", "std", "grid", "device")


@dataclass(frozen=True)
class ExplainJob:
    """Everything that decides an item's outputs (and nothing about where it runs).

    Attributes:
        model_args: the model flags as parsed (``MODEL_FLAGS``).
        algorithms: registry names, in the order the local run uses.
        cam_layer: the CAM layer's qualified name (resolved by the driver).
        top_k: targets per image (1 with ``class_index``).
        class_index: a fixed class, else None.
        unit: ``(kind, index, layer)`` of ``--channel`` / ``--neuron``, else None.
        colormap: the colormap the engine renders with.
        save_raw: also write the ``.npy`` arrays.
        base, file_stem, ext, flat, names: the output :class:`Layout` (``names``: the output stems
            of inputs whose stems clash, as the local run chose them).
        style: how the pictures are drawn (:class:`convscope.stills.present.Style`).
        versus, negate: the contrast class and the counterfactual flag of every target.
        options: the algorithm options (``ViewRequest.options``).
        batch_delay: seconds a worker sleeps after each batch (0; tests use it to kill a worker mid-run).
    """

    model_args: dict
    algorithms: tuple[str, ...]
    cam_layer: str
    top_k: int
    class_index: int | None
    unit: tuple[str, int, str] | None
    colormap: str
    save_raw: bool
    base: str
    file_stem: str | None = None
    ext: str | None = None
    flat: bool = False
    names: tuple[tuple[str, str], ...] = ()
    style: object = None
    versus: int | None = None
    negate: bool = False
    options: tuple = ()
    batch_delay: float = field(default=0.0, compare=False)

    @property
    def layout(self) -> Layout:
        # overwrite: a worker only gets items the ledger says are not (or no longer) written
        return Layout(Path(self.base), self.file_stem, self.ext, self.flat, overwrite=True, names=dict(self.names))

    def fingerprint(self) -> str:
        """A hash of every setting that changes outputs (not of the cluster, batch size or delay)."""
        data = asdict(self)
        data.pop("batch_delay")
        data.pop("base")  # OUTDIR may move; what is in it is checked file by file
        data["model_args"] = {k: data["model_args"].get(k) for k in MODEL_FLAGS if k != "device"}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def request(self) -> ViewRequest:
        """The engine request of the local run (``cli/explain.py``)."""
        from convscope import views

        return ViewRequest(cam_layer=self.cam_layer, algorithms=self.algorithms, panels=views.for_stills(),
                           top_k=max(self.top_k, 5), keep_raw=True, colormap=self.colormap, options=self.options)


def model_args_of(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k, None) for k in MODEL_FLAGS}


class _NoJournal:
    """The local run's per-item lines and ``results.jsonl`` come from the driver, in listing order."""

    def item(self, *args: object) -> None:
        pass


class ExplainWorker:
    """One model, one engine: runs batches of a job and writes their outputs.

    The engine is the public :class:`convscope.engine.Engine`; outputs are written by the local
    command's writer, so a worker writes exactly what ``convscope explain`` writes for an item.
    """

    def __init__(self, job: ExplainJob) -> None:
        from convscope.cli.common import load_model_from_args
        from convscope.cli.explain import _Writer
        from convscope.engine import Engine

        self.job = job
        bundle = load_model_from_args(argparse.Namespace(**job.model_args))
        self.engine = Engine(bundle)
        self.request = job.request()
        self.unit = (Target(*job.unit, versus=job.versus, negate=job.negate) if job.unit is not None else None)
        self.writer = _Writer(job.layout, bundle, job.save_raw, job.style, _NoJournal())

    def run(self, items: list[Item], frames: list[np.ndarray]) -> list[tuple[dict, list[str]]]:
        """Explain and write one batch; ``[(report entry, warning lines)]`` per item, in order."""
        from convscope.stills.targets import run_targets

        out = []
        per_item = run_targets(self.engine, frames, self.request, self.job.top_k, self.job.class_index, self.unit,
                               self.job.versus, self.job.negate)
        for item, frame, results in zip(items, frames, per_item, strict=True):
            self.writer.item(item, results, frame)
            out.append((self.writer.items.pop(), list(self.writer.warnings)))
            self.writer.warnings.clear()
        return out

    def close(self) -> None:
        self.engine.close()
