"""``convscope units`` over a folder or a video: every channel's top-k patches, resumable.

One forward per batch serves every chosen layer (hooks keep their outputs; no gradient). Each
layer has a :class:`~convscope.units.topk.TopKTracker` that keeps boxes only; the patches are cut
at the end from the source images themselves, at their own resolution, through
:func:`~convscope.units.receptive_field.to_source`.

**Resumable.** After every batch the trackers and the table of processed items are saved to
``OUTDIR/.units/state.pt`` (written to a temporary file, then renamed, so a kill leaves either the
old or the new state). An item is keyed by its relative name and the SHA-1 of its content (file
bytes for images, decoded pixels for video frames): a rerun skips every item already in the table
and computes only the rest, in the same batches an uninterrupted run would have used, so the
result is the same. A run with other settings (model, layers, top-k, input size) in the same
OUTDIR is refused unless ``restart`` is set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from convscope.errors import InputError, OutputError, UsageError
from convscope.models.bundle import ModelBundle
from convscope.models.layers import LayerInfo, default_layer, discover_layers, resolve_layer
from convscope.models.preprocess import frame_to_tensor, normalize, resize_crop
from convscope.stills.inputs import Item, Unreadable, expand_input, load_item
from convscope.stills.outputs import ensure_dir
from convscope.units.receptive_field import ReceptiveField, receptive_field, to_source
from convscope.units.topk import TopKTracker, thumbnails

STATE_VERSION = 1
PATCH_SIDE = 96  # longest side of a written patch, in pixels


def slug(name: str) -> str:
    """A layer name as a file name (``layer4.2.conv1`` stays, other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "layer"


@dataclass
class UnitsOptions:
    """What ``convscope units`` computes (everything that decides the result)."""

    layers: tuple[str, ...] = ()
    top_k: int = 9
    batch_size: int = 8
    every: int = 1
    channels: tuple[int, ...] | None = None  # None: all
    vis: bool = False
    vis_steps: int = 128
    vis_size: int = 128
    restart: bool = False


@dataclass
class RunStats:
    computed: int = 0  # items that went through the network in this run
    reused: int = 0  # items found in the state
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def item_key(item: Item, frame: np.ndarray | None) -> str:
    """``rel#sha1``: the file's bytes for images, the decoded pixels for video frames."""
    if item.frame is None:
        digest = _sha1(Path(item.path).read_bytes())
    else:
        digest = _sha1(np.ascontiguousarray(frame).tobytes())
    return f"{item.rel}#{digest}"


class _Capture:
    """Forward hooks that keep the first output of each wanted layer."""

    def __init__(self, module: torch.nn.Module, names: list[str]) -> None:
        self.out: dict[str, torch.Tensor] = {}
        modules = dict(module.named_modules())
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(_m, _i, out):
            if name not in self.out and isinstance(out, torch.Tensor):
                self.out[name] = out.clone()  # later in-place ops must not change it
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def pick_layers(bundle: ModelBundle, names: tuple[str, ...]) -> list[LayerInfo]:
    layers = discover_layers(bundle)
    if not names:
        d = default_layer(layers)
        if d is None:
            raise UsageError(f"{bundle.name} has no feature map to look at; name one with --layer")
        return [d]
    return [resolve_layer(layers, n, "conv") for n in names]


def _config(bundle: ModelBundle, layers: list[LayerInfo], opts: UnitsOptions) -> dict:
    return {"version": STATE_VERSION, "model": bundle.name, "layers": [la.name for la in layers],
            "top_k": opts.top_k, "input_size": list(bundle.preprocessing.input_size),
            "policy": bundle.preprocessing.policy, "every": opts.every}


@torch.inference_mode()
def batch_maxima(bundle: ModelBundle, layers: list[LayerInfo], capture: _Capture, frames: list[np.ndarray],
                 to_numpy: bool = False) -> dict:
    """One forward over a batch of RGB frames: per layer, each row's per-channel maximum and its
    position ``(vals, ys, xs, (h, w))`` (the candidates :meth:`TopKTracker.update_maxima` takes),
    and the rows' :func:`~convscope.units.topk.thumbnails` for the near-duplicate test."""
    prep, dev = bundle.preprocessing, bundle.device
    x255 = torch.cat([resize_crop(frame_to_tensor(frame, dev), prep) for frame in frames])
    capture.out = {}
    was_training = bundle.module.training
    bundle.module.eval()
    try:
        bundle.module(normalize(x255, prep))
    finally:
        bundle.module.train(was_training)
    out: dict[str, Any] = {"thumbs": thumbnails(x255), "layers": {}}
    for la in layers:
        acts = la.as_map(capture.out[la.name]).detach()
        h, w = acts.shape[-2:]
        vals, where = acts.flatten(2).float().max(dim=2)  # B x C
        out["layers"][la.name] = (vals, where // w, where % w, (int(h), int(w)))
    if to_numpy:
        out["thumbs"] = out["thumbs"].cpu().numpy()
        out["layers"] = {n: (v.cpu().numpy(), y.cpu().numpy(), x.cpu().numpy(), g)
                         for n, (v, y, x, g) in out["layers"].items()}
    return out


class UnitsRun:
    """One ``convscope units`` run: state, batches, outputs."""

    def __init__(self, bundle: ModelBundle, input_path: str | Path, outdir: str | Path, opts: UnitsOptions,
                 progress: bool | None = None,
                 on_batch: Callable[[int], None] | None = None,
                 vis_progress: Callable[[str], None] | None = None) -> None:
        self.bundle, self.opts, self.progress, self.on_batch = bundle, opts, progress, on_batch
        self.vis_progress = vis_progress
        if opts.top_k < 1:
            raise UsageError(f"--top-k must be 1 or more, got {opts.top_k}")
        if opts.batch_size < 1:
            raise UsageError(f"--batch-size must be 1 or more, got {opts.batch_size}")
        self.input_path = Path(input_path)
        self.inputs = expand_input(self.input_path, opts.every)
        self.outdir = ensure_dir(Path(outdir))
        self.layers = pick_layers(bundle, opts.layers)
        for la in self.layers:
            if opts.channels is not None and max(opts.channels) >= (la.channels or 0):
                raise UsageError(f"--channels: {la.name} has {la.channels} channels (0..{(la.channels or 1) - 1})")
        self.config = _config(bundle, self.layers, opts)
        self.state_path = self.outdir / ".units" / "state.pt"
        self.items: list[dict] = []  # index = tracker frame id: {"key", "source", "frame", "hw"}
        self.keys: dict[str, int] = {}
        state = self._read_state()  # other settings are refused before anything is computed
        self.rfs: dict[str, ReceptiveField] = {la.name: receptive_field(bundle, la) for la in self.layers}
        self.trackers = {la.name: TopKTracker(int(la.channels or 0), opts.top_k, rf=self.rfs[la.name], patch=0,
                                              device=bundle.device) for la in self.layers}
        self.stats = RunStats()
        if state is not None:
            self.items = state["items"]
            self.keys = {it["key"]: i for i, it in enumerate(self.items)}
            for name, tracker in self.trackers.items():
                tracker.load_state_dict(state["trackers"][name])

    # -- state -------------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        if not self.state_path.exists():
            return None
        if self.opts.restart:
            self.state_path.unlink()
            return None
        try:
            state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a state we cannot read is not worth keeping
            raise OutputError(f"cannot read {self.state_path} ({exc}); rerun with --restart") from None
        if state.get("config") != self.config:
            raise UsageError(f"{self.outdir} holds a units run with other settings "
                             f"({state.get('config')}); use another OUTDIR or --restart")
        return state

    def _save_state(self) -> None:
        ensure_dir(self.state_path.parent)
        tmp = self.state_path.with_suffix(".tmp")
        torch.save({"config": self.config, "items": self.items,
                    "trackers": {n: t.state_dict() for n, t in self.trackers.items()}}, tmp)
        os.replace(tmp, self.state_path)

    # -- compute -----------------------------------------------------------------------------
    def source_name(self, item: Item) -> str:
        if self.inputs.kind == "video":
            return Path(item.path).name
        return item.rel

    def run(self) -> dict:
        """Process every item not yet in the state, then write units.json, patches and pages."""
        batch: list[tuple[Item, np.ndarray, str]] = []
        disable = True if self.inputs.kind == "image" or self.progress is False else (None if self.progress is None else False)
        module = self.bundle.module
        capture = _Capture(module, [la.name for la in self.layers])
        batches = 0
        try:
            with tqdm(total=self.inputs.count, unit="img", desc="convscope units", disable=disable,
                      dynamic_ncols=True) as bar:
                for item in self.inputs.items:
                    try:
                        frame = load_item(item)
                        key = item_key(item, frame)
                    except (Unreadable, OSError) as exc:
                        if self.inputs.kind == "image":
                            raise InputError(f"cannot read {item.path}: {exc}") from None
                        self.stats.skipped.append((item.rel, str(exc)))
                        bar.update(1)
                        continue
                    if key in self.keys:
                        self.stats.reused += 1
                        bar.update(1)
                        continue
                    batch.append((item, frame, key))
                    if len(batch) == self.opts.batch_size:
                        self._process(batch, capture)
                        bar.update(len(batch))
                        batch = []
                        batches += 1
                        if self.on_batch is not None:
                            self.on_batch(batches)
                if batch:
                    self._process(batch, capture)
                    bar.update(len(batch))
        finally:
            capture.close()
        if not self.items:
            raise InputError("none of the input files could be read")
        return self.write()

    def _process(self, batch: list[tuple[Item, np.ndarray, str]], capture: _Capture) -> None:
        maxima = batch_maxima(self.bundle, self.layers, capture, [frame for _i, frame, _k in batch])
        self.take([(self.source_name(item), item.frame, frame.shape[:2], key) for item, frame, key in batch], maxima)

    @torch.inference_mode()
    def take(self, rows: list[tuple[str, int | None, tuple[int, int], str]], maxima: dict) -> None:
        """Add one batch's items (``(source, frame, (h, w), key)``, in listing order) and their
        :func:`batch_maxima` to the trackers, then save the state. ``units --ray`` calls this on the
        driver with the maxima its workers computed, batch after batch in listing order, so the
        trackers go through exactly the local run's updates."""
        ids = []
        for source, frame, hw, key in rows:
            self.keys[key] = len(self.items)
            ids.append(len(self.items))
            self.items.append({"key": key, "source": source, "frame": frame, "hw": [int(hw[0]), int(hw[1])]})
        thumbs = torch.as_tensor(maxima["thumbs"])
        for la in self.layers:
            vals, ys, xs, grid = maxima["layers"][la.name]
            self.trackers[la.name].update_maxima(torch.as_tensor(vals), torch.as_tensor(ys), torch.as_tensor(xs),
                                                 tuple(grid), ids, thumbs=thumbs)
        self.stats.computed += len(rows)
        self._save_state()

    # -- outputs -----------------------------------------------------------------------------
    def channels(self, layer: LayerInfo) -> list[int]:
        return list(self.opts.channels) if self.opts.channels is not None else list(range(int(layer.channels or 0)))

    def units(self) -> dict:
        """The ``units.json`` document."""
        prep = self.bundle.preprocessing
        out: dict[str, Any] = {"model": self.bundle.name, "layers": {}}
        for la in self.layers:
            tracker = self.trackers[la.name]
            rows = []
            for c in self.channels(la):
                top = []
                for e in tracker.entries(c):
                    it = self.items[e.frame]
                    box = to_source(e.box, tuple(it["hw"]), prep)
                    top.append({"source": it["source"], "frame": it["frame"], "box": list(box), "score": e.score})
                rows.append({"channel": c, "top": top})
            out["layers"][la.name] = rows
        return out

    def write(self) -> dict:
        from convscope.units import html

        doc = self.units()
        (self.outdir / "units.json").write_text(json.dumps(doc, indent=1))
        patches = self._write_patches(doc)
        vis = self._write_vis() if self.opts.vis else {}
        meta = {"model": self.bundle.name, "input": str(self.input_path), "items": len(self.items),
                "receptive_fields": {n: rf.as_dict() for n, rf in self.rfs.items()},
                "stats": {la.name: {"mean": self.trackers[la.name].mean().tolist(),
                                    "active": self.trackers[la.name].active.tolist()} for la in self.layers}}
        (self.outdir / "meta.json").write_text(json.dumps(meta))
        html.write_pages(self.outdir, doc, patches, vis, meta)
        return doc

    def _write_patches(self, doc: dict) -> dict[str, dict[int, list[str]]]:
        """Cut every kept box from its source image; returns layer -> channel -> file names (rank order)."""
        wanted: dict[tuple[str, int | None], list[tuple[str, int, int, list[int]]]] = {}
        for layer, rows in doc["layers"].items():
            for row in rows:
                for rank, t in enumerate(row["top"]):
                    wanted.setdefault((t["source"], t["frame"]), []).append((layer, row["channel"], rank, t["box"]))
        names: dict[str, dict[int, list[str]]] = {la: {} for la in doc["layers"]}
        for layer, rows in doc["layers"].items():
            ensure_dir(self.outdir / "patches" / slug(layer))
            for row in rows:
                names[layer][row["channel"]] = [""] * len(row["top"])
        for (source, frame), image in self._frames_for(set(wanted)):
            for layer, channel, rank, box in wanted[(source, frame)]:
                crop = Image.fromarray(image[box[1]:box[3], box[0]:box[2]])
                crop.thumbnail((PATCH_SIDE, PATCH_SIDE), Image.Resampling.LANCZOS)
                if max(crop.size) < PATCH_SIDE:  # small boxes: enlarge, so every patch shows at one size
                    scale = PATCH_SIDE / max(crop.size)
                    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                                       Image.Resampling.NEAREST)
                rel = f"patches/{slug(layer)}/c{channel:04d}_{rank}.jpg"
                crop.save(self.outdir / rel, quality=90)
                names[layer][channel][rank] = rel
        return names

    def _frames_for(self, wanted: set[tuple[str, int | None]]):
        """Yield ``((source, frame), image)`` for every wanted source frame (one decode pass for videos)."""
        if self.inputs.kind == "video":
            again = expand_input(self.input_path, self.opts.every)
            left = set(wanted)
            for item in again.items:
                key = (self.source_name(item), item.frame)
                if key in left:
                    left.discard(key)
                    yield key, load_item(item)
                if not left:
                    break
            return
        root = self.inputs.root
        for source, frame in sorted(wanted, key=lambda k: k[0]):
            yield (source, frame), load_item(Item(source, root / source))

    def _write_vis(self) -> dict[str, dict[int, str]]:
        from convscope.units.featvis import FeatureVis

        out: dict[str, dict[int, str]] = {}
        fv = FeatureVis(self.bundle, cache_dir=self.outdir / ".units" / "featvis")
        for la in self.layers:
            ensure_dir(self.outdir / "vis" / slug(la.name))
            out[la.name] = {}
            for c in self.channels(la):
                if self.vis_progress is not None:
                    self.vis_progress(f"{la.name}:{c}")
                img = fv.render(la, c, steps=self.opts.vis_steps, size=self.opts.vis_size)
                rel = f"vis/{slug(la.name)}/c{c:04d}.png"
                Image.fromarray(img).save(self.outdir / rel)
                out[la.name][c] = rel
        return out


def options_from(**kwargs: Any) -> UnitsOptions:
    names = {f.name for f in dataclasses.fields(UnitsOptions)}
    return UnitsOptions(**{k: v for k, v in kwargs.items() if k in names})
