"""``convscope units --ray``: the local units run's work on a Ray cluster, the same units.json and pages.

The driver builds the local :class:`~convscope.units.dataset.UnitsRun` (model, layers, receptive
fields, trackers, the saved state of an earlier run), lists the input and plans batches of
consecutive items, as the local run batches them. A Ray Data pipeline decodes and hashes them in
tasks (:func:`decode_units`) and sends them to a pool of actors, one model each
(:class:`UnitsActor`), that run the forward and return each batch's **candidates**: per layer, per
item and channel, the maximum and its position (the only candidate of an item a top-k tracker ever
considers), and the items' 16x16 thumbnails (for the near-duplicate test). The driver takes the
batches in listing order with :meth:`UnitsRun.take`, so its trackers go through exactly the updates
of the local run (same top-k, same scenes, same ties: ``units.json`` is equal), and writes the
patches, pages and ``units.json`` with the local writer.

Why not a top-k per worker merged at the end: the tracker keeps one patch per place and scene
(near-duplicate frames of one scene compete, whichever worker saw them) and breaks ties by arrival
order; replaying the per-item maxima in order is exact by construction and costs ``channels x 12``
bytes per item and layer.

**Resuming.** The driver saves the local run's state (``OUTDIR/.units/state.pt``) after every batch
it takes; a rerun (local or ``--ray``) skips items already in it (decode tasks hash the files and
do not decode known ones). Batches arrive in any order; those after a missing one wait in memory,
so a job stopped early keeps the state up to the first batch not yet finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from convscope.errors import InputError, UsageError
from convscope.scale.cluster import Pool
from convscope.scale.job import model_args_of
from convscope.stills.inputs import Unreadable, read_image


@dataclass(frozen=True)
class UnitsJob:
    """What a worker needs: the model flags (``MODEL_FLAGS``) and the layers' qualified names."""

    model_args: dict
    layers: tuple[str, ...]


def decode_units(row: dict, known: frozenset[str], max_pixels: int | None) -> dict:
    """One planned batch: read and hash each file (``rel#sha1``, the local run's key); items the
    saved state already holds are not decoded."""
    from convscope.pixels import set_max_pixels

    set_max_pixels(max_pixels)
    out = []
    for index, rel, path in json.loads(row["items"]):
        entry = {"index": index, "rel": rel}
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            out.append({**entry, "status": "bad", "reason": str(exc.strerror or exc)})
            continue
        entry["key"] = key = f"{rel}#{hashlib.sha1(data).hexdigest()}"
        if key in known:
            out.append({**entry, "status": "reused"})
            continue
        try:
            image = read_image(path)
        except Unreadable as exc:
            out.append({**entry, "status": "bad", "reason": str(exc)})
            continue
        out.append({**entry, "status": "todo", "image": image})
    return {"batch": row["batch"], "payload": pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)}


class UnitsActor:
    """A Ray Data actor: one model with hooks on the wanted layers, one planned batch per call."""

    def __init__(self, job: UnitsJob) -> None:
        from convscope.cli.common import load_model_from_args
        from convscope.units.dataset import _Capture, pick_layers

        self.bundle = load_model_from_args(argparse.Namespace(**job.model_args))
        self.layers = pick_layers(self.bundle, job.layers)
        self.capture = _Capture(self.bundle.module, [la.name for la in self.layers])

    def __call__(self, batch: dict) -> dict:
        from convscope.units.dataset import batch_maxima

        results = []
        for payload in batch["payload"]:
            rows = pickle.loads(payload)
            todo = [r for r in rows if r["status"] == "todo"]
            maxima = (batch_maxima(self.bundle, self.layers, self.capture, [r["image"] for r in todo], to_numpy=True)
                      if todo else None)
            for r in todo:
                r["hw"] = tuple(int(v) for v in r.pop("image").shape[:2])
            results.append(pickle.dumps({"rows": rows, "maxima": maxima}, protocol=pickle.HIGHEST_PROTOCOL))
        return {"batch": np.asarray(batch["batch"]), "result": np.asarray(results, dtype=object)}


def run_units_pipeline(ray, job: UnitsJob, batches: list[list[tuple[int, str, str]]], pool: Pool,
                       known: frozenset[str], max_pixels: int | None = None):
    """Yield ``(batch index, {"rows", "maxima"})`` as batches finish (in any order)."""
    rows = [{"batch": b, "items": json.dumps(items)} for b, items in enumerate(batches)]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * pool.workers)))
    ds = ds.map(decode_units, fn_kwargs={"known": known, "max_pixels": max_pixels},
                num_cpus=0.25 if pool.gpus else 0)
    ds = ds.map_batches(UnitsActor, fn_constructor_kwargs={"job": job}, batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=pool.workers), num_cpus=pool.cpus,
                        num_gpus=pool.gpus or None)
    for row in ds.iter_rows():
        yield int(row["batch"]), pickle.loads(row["result"])


def run(args: argparse.Namespace) -> int:
    """``convscope units --ray``: same checks, same outputs as :func:`convscope.cli.units.run`."""
    from convscope.cli.common import load_model_from_args
    from convscope.scale.cluster import connect, import_ray, size_pool
    from convscope.units.dataset import UnitsOptions, UnitsRun

    import_ray()  # fail in a second when Ray is missing, not after loading the model
    if args.vis_size < 16:
        raise UsageError(f"--vis-size must be 16 or more, got {args.vis_size}")
    if not Path(args.input).expanduser().exists():
        raise InputError(f"input not found: {args.input}")
    opts = UnitsOptions(layers=tuple(args.layer), top_k=args.top_k, batch_size=args.batch_size, every=args.every,
                        channels=args.channels, vis=args.vis, vis_steps=args.vis_steps, vis_size=args.vis_size,
                        restart=args.restart)
    bundle = load_model_from_args(argparse.Namespace(**{**vars(args), "device": "cpu"}))
    units = UnitsRun(bundle, args.input, args.output, opts, progress=False)
    if units.inputs.kind == "video":
        raise UsageError("--ray takes an image or a folder of images; run videos without --ray")
    listed = list(units.inputs.items)
    items = [(i, item.rel, str(item.path)) for i, item in enumerate(listed)]
    batches = [items[i:i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    job = UnitsJob(model_args=model_args_of(args), layers=tuple(la.name for la in units.layers))
    ray = connect(args.ray)
    pool = size_pool(ray, args.ray_workers, args.ray_cpus)
    if not args.quiet:
        print(f"convscope: Ray: {len(items)} image(s) in {len(batches)} batch(es) on {pool.describe()}",
              file=sys.stderr)
    pending: dict[int, dict] = {}
    following = 0
    with tqdm(total=len(items), unit="img", desc="convscope units (ray)", file=sys.stderr, dynamic_ncols=True,
              disable=True if args.quiet or units.inputs.kind == "image" else None) as bar:
        for index, result in run_units_pipeline(ray, job, batches, pool, frozenset(units.keys),
                                                getattr(args, "max_pixels", None)):
            if index < following or index in pending:  # a retried batch: the first result stands
                continue
            pending[index] = result
            bar.update(len(result["rows"]))
            while following in pending:  # take the batches in listing order, as the local run does
                _take(units, pending.pop(following))
                following += 1
    if not units.items:
        raise InputError("none of the input files could be read")
    doc = units.write()
    if not args.quiet:
        from convscope.cli.units import print_summary

        print_summary(units, doc, args.output)
    return 0


def _take(units, result: dict) -> None:
    rows, todo = result["rows"], []
    for r in rows:
        if r["status"] == "bad":
            if units.inputs.kind == "image":
                raise InputError(f"cannot read {r['rel']}: {r['reason']}")
            units.stats.skipped.append((r["rel"], r["reason"]))
        elif r["status"] == "reused":
            units.stats.reused += 1
        else:
            todo.append((r["rel"], None, r["hw"], r["key"]))
    if todo:
        units.take(todo, result["maxima"])
