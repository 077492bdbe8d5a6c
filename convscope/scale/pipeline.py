"""The Ray Data pipeline of ``explain --ray``: decode and check -> engine actors -> records.

Rows are batches planned by the driver (consecutive items of the listing, as the local run
batches them), so every engine pass sees the images the local pass saw. Decoding runs as Ray Data
tasks that also hash each input and look up its ledger record; the engine stage is a pool of
actors, one :class:`~convscope.scale.job.ExplainWorker` each, that write the outputs and the
record. Ray Data restarts a killed actor and retries its batch (``max_restarts=-1``,
``max_task_retries=-1``: its defaults for actor pools); writes are idempotent (same paths, record
renamed into place last) and the driver keeps one result per item, so every item ends up exactly once.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from convscope.scale import ledger
from convscope.scale.cluster import Pool
from convscope.scale.decode import decode_batch
from convscope.scale.job import ExplainJob, ExplainWorker
from convscope.stills.inputs import Item


class EngineActor:
    """A Ray Data actor: one engine for its whole life, one planned batch per call."""

    def __init__(self, job: ExplainJob) -> None:
        start = time.perf_counter()
        self.job = job
        self.worker = ExplainWorker(job)
        self.fingerprint = job.fingerprint()
        self.batches = 0
        self.start_s = time.perf_counter() - start
        self._note()

    def _note(self) -> None:
        """``OUTDIR/.convscope/workers/PID``: what starting this worker cost and how many batches it
        finished (the tests find, and kill, a worker that is between two batches with it)."""
        pids = self.job.layout.base / ledger.LEDGER / "workers"
        pids.mkdir(parents=True, exist_ok=True)
        tmp = pids / f".{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"pid": os.getpid(), "start_s": self.start_s, "batches": self.batches}))
        tmp.replace(pids / str(os.getpid()))

    def __call__(self, batch: dict) -> dict:
        results = []
        for payload in batch["payload"]:
            rows = pickle.loads(payload)
            todo = [r for r in rows if r["status"] == "todo"]
            done = {}
            if todo:
                items = [Item(r["rel"], Path(r["path"])) for r in todo]
                for row, item, (entry, warnings) in zip(todo, items, self.worker.run(items, [r["image"] for r in todo]),
                                                        strict=True):
                    ledger.write_record(self.job.layout, item, row["sha"], self.fingerprint, entry, warnings)
                    done[row["index"]] = {"entry": entry, "warnings": warnings}
            out = []
            for r in rows:
                base = {"index": r["index"], "rel": r["rel"], "status": r["status"]}
                if r["status"] == "todo":
                    out.append({**base, "status": "written", **done[r["index"]]})
                elif r["status"] == "done":
                    out.append({**base, "entry": r["record"]["entry"], "warnings": r["record"].get("warnings", [])})
                else:
                    out.append({**base, "reason": r["reason"]})
            results.append(json.dumps(out))
        self.batches += 1
        if self.job.batch_delay:
            self._note()
            time.sleep(self.job.batch_delay)
        return {"batch": np.asarray(batch["batch"]), "result": np.asarray(results, dtype=object)}


def run_pipeline(ray, job: ExplainJob, batches: list[list[tuple[int, str, str]]], pool: Pool,
                 max_pixels: int | None = None) -> Iterator[list[dict]]:
    """Yield each planned batch's per-item results as they finish (in any order)."""
    rows = [{"batch": b, "items": json.dumps(items)} for b, items in enumerate(batches)]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * pool.workers)))
    layout = job.layout
    where = {"base": str(layout.base), "file_stem": layout.file_stem, "ext": layout.ext, "flat": layout.flat}
    ds = ds.map(decode_batch, fn_kwargs={"layout": where, "fingerprint": job.fingerprint(), "max_pixels": max_pixels}, num_cpus=0.25 if pool.gpus else 0)
    ds = ds.map_batches(EngineActor, fn_constructor_kwargs={"job": job}, batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=pool.workers), num_cpus=pool.cpus, num_gpus=pool.gpus or None)
    for row in ds.iter_rows():
        yield json.loads(row["result"])
