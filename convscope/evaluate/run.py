"""Run an evaluation over a folder: locally batch by batch, or on Ray (one evaluator per actor)."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from convscope.evaluate.evaluator import EvalSettings, Evaluator, ImageEval


class Collector:
    """Rows and curves of every batch, kept in item order."""

    def __init__(self) -> None:
        self.parts: dict[int, ImageEval] = {}

    def add(self, key: int, part: ImageEval) -> None:
        self.parts.setdefault(key, part)  # a retried batch: the first result stands

    def rows(self) -> list[dict]:
        return [r for k in sorted(self.parts) for r in self.parts[k].rows]

    def curves(self) -> dict[str, dict[str, list[np.ndarray]]]:
        out: dict[str, dict[str, list[np.ndarray]]] = {}
        for k in sorted(self.parts):
            for method, kinds in self.parts[k].curves.items():
                for kind, c in kinds.items():
                    out.setdefault(method, {}).setdefault(kind, []).append(c)
        return out


def run_local(inputs, bundle, settings: EvalSettings, batch_size: int, strict: bool, progress: bool | None):
    from convscope.stills.runner import run_items

    collector = Collector()
    evaluator = Evaluator(bundle, settings)
    count = [0]
    try:
        def process(items, frames) -> None:
            collector.add(count[0], evaluator.evaluate(frames, [i.rel for i in items]))
            count[0] += 1

        summary = run_items(inputs, process, batch_size=batch_size, strict=strict, progress=progress)
    finally:
        evaluator.close()
    return collector, summary.skipped, evaluator.layer_count


class EvalActor:
    """A Ray Data actor holding one :class:`Evaluator` (the trained engine and its randomised copies)."""

    def __init__(self, model_args: dict, settings: EvalSettings) -> None:
        import argparse

        from convscope.cli.common import load_model_from_args

        self.evaluator = Evaluator(load_model_from_args(argparse.Namespace(**model_args)), settings)

    def __call__(self, batch: dict) -> dict:
        out = []
        for payload in batch["payload"]:
            rows = pickle.loads(payload)
            good = [r for r in rows if r["status"] == "todo"]
            part = self.evaluator.evaluate([r["image"] for r in good], [r["rel"] for r in good]) if good else None
            bad = [(r["rel"], r["reason"]) for r in rows if r["status"] == "bad"]
            out.append(pickle.dumps({"part": part, "bad": bad, "n": len(rows)}))
        return {"batch": np.asarray(batch["batch"]), "result": np.asarray(out, dtype=object)}


def run_ray(address: str, workers: int | None, cpus: float | None, items: list[tuple[int, str, str]],
            base: Path, model_args: dict, settings: EvalSettings, batch_size: int, quiet: bool,
            on_bad: Callable[[str, str], None]):
    from convscope.scale.cluster import connect, size_pool
    from convscope.scale.decode import decode_batch

    ray = connect(address)
    pool = size_pool(ray, workers, cpus)
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    if not quiet:
        print(f"convscope: Ray: {len(items)} image(s) in {len(batches)} batch(es) on {pool.describe()}", file=sys.stderr)
    rows = [{"batch": b, "items": json.dumps(chunk)} for b, chunk in enumerate(batches)]
    where = {"base": str(base), "file_stem": None, "ext": None, "flat": False}
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * pool.workers)))
    ds = ds.map(decode_batch, fn_kwargs={"layout": where, "fingerprint": None, "max_pixels": None},
                num_cpus=0.25 if pool.gpus else 0)
    ds = ds.map_batches(EvalActor, fn_constructor_kwargs={"model_args": model_args, "settings": settings},
                        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=pool.workers),
                        num_cpus=pool.cpus, num_gpus=pool.gpus or None)
    collector, skipped, seen = Collector(), [], set()
    with tqdm(total=len(items), unit="img", desc="convscope evaluate (ray)", file=sys.stderr, dynamic_ncols=True,
              disable=True if quiet else None) as bar:
        for row in ds.iter_rows():
            got = pickle.loads(row["result"])
            if int(row["batch"]) in seen:  # a retried batch: the first result stands
                continue
            seen.add(int(row["batch"]))
            if got["part"] is not None:
                collector.add(int(row["batch"]), got["part"])
            for rel, reason in got["bad"]:
                on_bad(rel, reason)
                skipped.append((rel, reason))
            bar.update(got["n"])
    return collector, skipped
