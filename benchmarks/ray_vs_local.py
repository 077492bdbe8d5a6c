"""``convscope explain`` on a folder: the plain local run against Ray with 2 workers, in one run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ray_vs_local.py --images 16

Both runs see the same folder (skimage photos and crops of them), the same model and flags. The
local run uses torch's default threads (all cores); the Ray run starts a local Ray
(``ray.init(num_cpus=2)``, timed apart) and two engine actors of 1 CPU each. Printed: wall time and
images/s of each, their ratio, and the per-image costs a projection needs (decode, engine, write,
an actor's start), measured in this process on one thread, with the ImageNet-val (50,000 images)
projection for N workers: ``T(N) = start + 50,000 * per_image / N``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from convscope.cli.main import main

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def make_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = getattr(data, PHOTOS[i % 4])()
        h, w = img.shape[:2]
        k = i // 4
        crop = img[(k * 13) % (h // 4):, (k * 29) % (w // 4):]
        Image.fromarray(np.ascontiguousarray(crop if k % 2 == 0 else crop[:, ::-1])).save(root / f"img{i:04d}.jpg",
                                                                                            quality=92)
    return root


def per_image_costs(folder: Path, model: str, algorithms: str, batch: int) -> dict:
    """Decode, engine and write cost per image, one thread, the second batch timed (warm)."""
    from convscope.cli.common import load_model_from_args
    from convscope.cli.explain import _Writer, parse_algorithms
    from convscope.cli.main import build_parser
    from convscope.scale.job import ExplainJob, ExplainWorker, model_args_of
    from convscope.stills.inputs import Item, read_image
    from convscope.stills.outputs import Layout

    torch.set_num_threads(1)
    files = sorted(folder.iterdir())[: 2 * batch]
    t = time.perf_counter()
    frames = [read_image(f) for f in files]
    decode = (time.perf_counter() - t) / len(files)
    out = Path(tempfile.mkdtemp())
    args = build_parser().parse_args(["explain", "-i", str(folder), "-o", str(out), "-m", model,
                                      "--algorithms", algorithms])
    t = time.perf_counter()
    bundle = load_model_from_args(args)
    from convscope.engine import Engine

    with Engine(bundle) as engine:
        layer = engine.resolve(__import__("convscope.engine", fromlist=["ViewRequest"]).ViewRequest()).cam_layer
    job = ExplainJob(model_args=model_args_of(args), algorithms=parse_algorithms(algorithms), cam_layer=layer,
                     top_k=1, class_index=None, unit=None, colormap="jet", save_raw=False, base=str(out))
    worker = ExplainWorker(job)
    start = time.perf_counter() - t
    items = [Item(f.name, f) for f in files]
    worker.run(items[:batch], frames[:batch])  # warm-up
    from convscope.stills.targets import run_targets

    t = time.perf_counter()
    per = run_targets(worker.engine, frames[batch:], worker.request, 1)
    engine_s = (time.perf_counter() - t) / batch
    writer = _Writer(Layout(out, None, None, False), bundle.labels, bundle.name, False)
    t = time.perf_counter()
    for item, results in zip(items[batch:], per, strict=True):
        writer.item(item, results)
    write_s = (time.perf_counter() - t) / batch
    worker.close()
    return {"decode_s": decode, "engine_s": engine_s, "write_s": write_s, "model_and_engine_start_s": start}


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    assert main(argv) == 0
    return time.perf_counter() - t


def run(n: int, model: str, algorithms: str, batch: int) -> dict:
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "photos", n)
        common = ["explain", "-i", str(folder), "-m", model, "--algorithms", algorithms, "--batch-size", str(batch), "-q"]
        local = timed([*common, "-o", str(Path(tmp) / "local")])
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        ray_start = time.perf_counter() - t
        remote = timed([*common, "-o", str(Path(tmp) / "ray"), "--ray", "--ray-workers", "2"])
        actors = [json.loads(p.read_text())["start_s"] for p in (Path(tmp) / "ray" / ".convscope" / "workers").iterdir()]
        ray.shutdown()
        costs = per_image_costs(folder, model, algorithms, batch)
    torch.set_num_threads(threads)
    return {"images": n, "model": model, "algorithms": algorithms, "batch": batch, "local_threads": threads,
            "local_s": local, "ray_init_s": ray_start, "ray_job_s": remote, "actor_start_s": actors, **costs}


def report(r: dict) -> str:
    n = r["images"]
    per = r["engine_s"] + r["write_s"]  # what one actor spends per image (decode runs in other tasks)
    lines = [
        f"{n} images, {r['model']}, --algorithms {r['algorithms']}, batch {r['batch']}",
        f"local run ({r['local_threads']} threads): {r['local_s']:.1f} s  {n / r['local_s']:.2f} img/s",
        f"Ray, 2 workers x 1 CPU: job {r['ray_job_s']:.1f} s  {n / r['ray_job_s']:.2f} img/s "
        f"(+ ray.init {r['ray_init_s']:.1f} s; actor start {', '.join(f'{s:.1f}' for s in r['actor_start_s'])} s)",
        f"ratio Ray/local (images/s): {r['local_s'] / r['ray_job_s']:.2f}",
        f"per image, one thread: decode {r['decode_s'] * 1e3:.0f} ms, engine {r['engine_s'] * 1e3:.0f} ms, "
        f"write {r['write_s'] * 1e3:.0f} ms; model + engine start {r['model_and_engine_start_s']:.1f} s",
        "ImageNet-val (50,000 images), CPU workers of 1 core at the engine + write cost above:",
    ]
    start = max(r["actor_start_s"])
    for workers in (2, 16, 64, 256):
        total = start + 50_000 * per / workers
        lines.append(f"  {workers:>4} workers: {total / 3600:6.2f} h  ({total:,.0f} s)")
    lines.append(f"  on GPUs the write ({r['write_s'] * 1e3:.0f} ms/img on one core) bounds one actor at "
                 f"{1 / r['write_s']:.0f} img/s unless it gets more CPUs (--ray-cpus)")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--algorithms", default="gradcam,guided_backprop")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    result = run(a.images, a.model, a.algorithms, a.batch_size)
    print(json.dumps(result) if a.json else report(result), file=sys.stdout)
