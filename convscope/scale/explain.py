"""``convscope explain --ray``: the local command's work on a Ray cluster, same files and report.json.

The driver lists the input and checks every flag as the local run does (loading the model once to
resolve the layer and targets), plans batches of consecutive items, runs
:func:`convscope.scale.pipeline.run_pipeline` and shows one progress bar for the whole job. It
writes ``report.json`` with the items in listing order, as the local run does. OUTDIR (and the
input) must be on storage every node sees (a shared file system) when the cluster has several machines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from convscope.errors import InputError, UsageError
from convscope.scale.job import ExplainJob, model_args_of
from convscope.stills.outputs import relative, write_json


def prepare(args: argparse.Namespace, names: tuple[str, ...]):
    """Validate the flags like the local run and build the job: ``(inputs, layout, job, model name)``."""
    from convscope.cli.common import load_model_from_args
    from convscope.stills import session
    from convscope.stills.options import (
        algorithm_options,
        check_class,
        check_top_k,
        conv_layer,
        engine_colormap,
        style_of,
        unit_of,
    )

    # A Ray job resumes: its ledger decides which items are redone (their outputs replaced), and
    # report.json / results.jsonl are rewritten whole at the end, so no "exists" check here.
    inputs, layout = session.open_io(argparse.Namespace(**{**vars(args), "overwrite": True}), folder_only=True)
    if inputs.kind == "video":
        raise UsageError("--ray takes an image or a folder of images; run videos without --ray")
    bundle = load_model_from_args(argparse.Namespace(**{**vars(args), "device": "cpu"}))
    class_index = check_class(bundle, args.class_index)
    versus = check_class(bundle, args.versus)
    top_k = 1 if class_index is not None else check_top_k(bundle, args.top_k, 1)
    with session.engine_for(bundle) as engine:
        layers = session.layers(engine, bundle)
    cam_layer = conv_layer(layers, args.layer, args.conv_index)
    unit = None
    if args.channel is not None:
        layer, index = unit_of(layers, args.channel, "conv")
        unit = ("channel", index, layer.name)
    elif args.neuron is not None:
        layer, index = unit_of(layers, args.neuron, "linear")
        unit = ("neuron", index, layer.name)
    job = ExplainJob(model_args=model_args_of(args), algorithms=names, cam_layer=cam_layer.name, top_k=top_k,
                     class_index=class_index, unit=unit, colormap=engine_colormap(args), save_raw=args.save_raw,
                     base=str(layout.base), file_stem=layout.file_stem, ext=layout.ext, flat=layout.flat,
                     names=tuple(sorted(layout.names.items())), style=style_of(args), versus=versus,
                     negate=bool(args.counterfactual), options=algorithm_options(args),
                     batch_delay=float(getattr(args, "ray_batch_delay", 0.0) or 0.0))
    return inputs, layout, job, bundle.name


def run(args: argparse.Namespace, names: tuple[str, ...]) -> int:
    from convscope.scale.cluster import connect, import_ray, size_pool

    import_ray()  # fail in a second when Ray is missing, not after loading the model
    from convscope.scale.pipeline import run_pipeline

    inputs, layout, job, model = prepare(args, names)
    listed = list(inputs.items)  # an iterator: read once
    items = [(i, item.rel, str(item.path)) for i, item in enumerate(listed)]
    batches = [items[i:i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    ray = connect(args.ray)
    pool = size_pool(ray, args.ray_workers, args.ray_cpus)
    if not args.quiet:
        print(f"convscope: Ray: {len(items)} image(s) in {len(batches)} batch(es) on {pool.describe()}",
              file=sys.stderr)
    results: dict[int, dict] = {}
    with tqdm(total=len(items), unit="img", desc="convscope (ray)", file=sys.stderr, dynamic_ncols=True,
              disable=True if args.quiet or inputs.kind == "image" else None) as bar:
        for batch in run_pipeline(ray, job, batches, pool, getattr(args, "max_pixels", None)):
            for r in batch:
                if r["index"] in results:  # a retried batch: the first result stands
                    continue
                results[r["index"]] = r
                bar.update(1)
                if r["status"] == "bad":
                    if inputs.kind == "image":
                        raise InputError(f"cannot read {r['rel']}: {r['reason']}")
                    if args.strict:
                        raise InputError(f"cannot read {r['rel']}: {r['reason']} (--strict)")
                for line in r.get("warnings", []):
                    print(line, file=sys.stderr)
    ordered = [results[i] for i, _, _ in items]
    for (_, _, path), r in zip(items, ordered, strict=True):
        if r["status"] == "done":  # a record made when the input or OUTDIR lay elsewhere
            r["entry"]["input"] = relative(Path(path), layout.base)
    entries = [r["entry"] for r in ordered if r["status"] != "bad"]
    skipped = [(r["rel"], r["reason"]) for r in ordered if r["status"] == "bad"]
    if not entries and skipped:
        raise InputError(f"none of the {len(skipped)} input file(s) could be read "
                         f"(first: {skipped[0][0]}: {skipped[0][1]})")
    report = write_json(layout.base / "report.json", {"model": model, "items": entries})
    _journal(layout, inputs.kind, listed, ordered)
    if not args.quiet:
        count = sum(len(e["outputs"]) for e in entries)
        resumed = sum(r["status"] == "done" for r in ordered)
        again = f" ({resumed} already written, checked by content)" if resumed else ""
        print(f"wrote {count} map(s) for {len(entries)} image(s){again}, summary.png and {report}", file=sys.stderr)
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable file(s):", file=sys.stderr)
        for rel, reason in skipped:
            print(f"  {rel}: {reason}", file=sys.stderr)
    return 0


def _journal(layout, kind: str, listed: list, ordered: list[dict]) -> None:
    """``results.jsonl`` as the local run writes it (folders only): one line per item, listing order."""
    import json

    if kind == "image":
        return
    with (layout.base / "results.jsonl").open("w", encoding="utf-8") as out:
        for item, r in zip(listed, ordered, strict=True):
            if r["status"] == "bad":  # unreadable: the local run has no line for it either
                continue
            e = r["entry"]
            line = {"input": e["input"], "predictions": e["predictions"],
                    "files": [relative(layout.folder(item) / "summary.png", layout.base)]}
            out.write(json.dumps(line) + "\n")
