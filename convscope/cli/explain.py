"""``convscope explain``: every registered algorithm for images, folders and videos, with a report.

Writes one PNG per algorithm and target, a labelled ``summary.png`` per input and one
``report.json``; ``--save-raw`` adds the unnormalised float32 maps and the exact model input as
``.npy``, so the maps can be checked or reproduced with another tool. The algorithm list in
``--help`` and the accepted names come from the algorithm registry.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import replace

from convscope import algorithms, views
from convscope.cli.common import add_command, add_model_options, load_model_from_args
from convscope.engine import Result, Target, ViewRequest
from convscope.errors import UsageError, suggest
from convscope.scale.options import add_ray_options
from convscope.stills import session
from convscope.stills.inputs import Item
from convscope.stills.options import (
    add_algorithm_options,
    add_class_options,
    add_colormap_option,
    add_io_options,
    add_layer_options,
    add_style_options,
    algorithm_options,
    check_class,
    check_top_k,
    conv_layer,
    engine_colormap,
    style_of,
    unit_of,
)
from convscope.stills.outputs import Layout, relative, write_image, write_json, write_npy
from convscope.stills.runner import run_items
from convscope.stills.sheet import Panel, contact_sheet, predictions_panel
from convscope.stills.targets import describe_target, resolved_target, run_targets, target_slug


def _algorithm_help() -> str:
    lines = ["algorithms (--algorithms):"]
    for name in algorithms.names():
        algo = algorithms.get(name)
        lines.append(f"  {name:<18} {getattr(algo, 'title', name)}: {getattr(algo, 'summary', '')}".rstrip(": "))
    return "\n".join(textwrap.shorten(line, 160, placeholder=" ...") if len(line) > 160 else line for line in lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "explain", "all algorithms for an image, folder or video, with summary.png and report.json",
        description="Write one PNG per algorithm and target, a labelled summary.png per input and "
        "report.json into OUTDIR (one subfolder per input for folders and videos).",
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _algorithm_help()
    add_io_options(p, "output folder (created when missing)")
    p.add_argument("--algorithms", default="all", metavar="A,B,...|all",
                   help="comma-separated algorithm names, or all (default: all; listed below)")
    add_colormap_option(p)
    add_style_options(p)
    add_layer_options(p, "the CAM algorithms' conv layer")
    add_class_options(p, 1)
    add_algorithm_options(p)
    t = p.add_mutually_exclusive_group()
    t.add_argument("--channel", metavar="LAYER:INDEX",
                   help="input-gradient algorithms (guided backprop, ...) explain this conv channel's maximum")
    t.add_argument("--neuron", metavar="LAYER:INDEX",
                   help="input-gradient algorithms explain this linear layer's neuron")
    p.add_argument("--save-raw", action="store_true",
                   help="also write each map before normalisation and the model input tensor as float32 .npy")
    add_model_options(p)
    add_ray_options(p)
    p.set_defaults(func=run)


def parse_algorithms(text: str) -> tuple[str, ...]:
    """``all`` or a comma list of registry names, validated with close-match suggestions."""
    known = tuple(algorithms.names())
    if text.strip().lower() == "all":
        return known
    names = tuple(dict.fromkeys(n.strip().replace("-", "_") for n in text.split(",") if n.strip()))
    if not names:
        raise UsageError("explain: --algorithms is empty; use all or some of: " + ", ".join(known))
    for name in names:
        if name not in known:
            raise UsageError(f"explain: unknown algorithm {name!r}{suggest(name, known)}; known: {', '.join(known)}")
    return names


class _Writer:
    """Writes one item's maps, sheet and raw arrays, and keeps its report entry."""

    def __init__(self, layout: Layout, bundle, save_raw: bool, style, sink: session.Sink):
        self.layout, self.labels, self.model, self.save_raw = layout, bundle.labels, bundle.name, save_raw
        self.bundle, self.style, self.sink = bundle, style, sink
        self.items: list[dict] = []
        self.warnings: list[str] = []  # one line per blank map, printed as the run goes

    def write(self, path, image):
        return write_image(self.layout.claim(path), image)

    def item(self, item: Item, results: list[Result], frame) -> None:
        folder = self.layout.folder(item)
        first = results[0]
        tensor_path = None
        if self.save_raw and first.input_tensor is not None:
            tensor_path = relative(write_npy(self.layout.claim(folder / "input_tensor.npy"), first.input_tensor),
                                   self.layout.base)
        panels = [
            Panel(first.input, ("input", item.rel, f"{first.input.shape[1]}x{first.input.shape[0]} as the model sees it")),
            Panel(predictions_panel([(p.index, p.label, p.probability) for p in first.predictions]),
                  (f"top-{len(first.predictions)} predictions", self.model)),
        ]
        outputs = []
        for result in results:
            for name, output in result.maps.items():
                target = resolved_target(output, result)
                stem = f"{name}_{target_slug(target)}"
                drawn = session.draw(output, result, frame, self.bundle, self.style)
                image = self.write(folder / f"{stem}.png", drawn)
                raw = None
                if self.save_raw and output.raw is not None:
                    raw = relative(write_npy(self.layout.claim(folder / f"{stem}.npy"), output.raw), self.layout.base)
                empty = getattr(output, "empty", None)
                outputs.append({"algorithm": name, "target": target.as_dict(), "layer": output.layer,
                                "image": relative(image, self.layout.base), "raw": raw,
                                "empty": empty is not None, "empty_reason": empty})
                if getattr(output, "rows", None):  # the extra input rows it took ("32 masked channels")
                    outputs[-1]["rows"] = output.rows
                if empty is not None:
                    self.warnings.append(session.blank_warning(output, target, self.labels,
                                                                None if self.layout.flat else item.rel))
                title = getattr(algorithms.get(name), "title", name)
                heading = f"{title} · {output.layer}" if output.layer else title
                panels.append(Panel(drawn, (heading, describe_target(target, self.labels),
                                                               f"layer {output.layer} · {output.rule}"
                                                               if output.layer else output.rule), empty))
        shown = []
        for panel in first.panels.values():  # plugin views: every panel that is not a map or on the sheet
            view = views.get(panel.view) if panel.view in views.names() else None
            if view is None or not view.stills or view.required:
                continue
            for suffix, picture in panel.images().items():
                path = self.write(folder / f"{panel.view}{suffix}.png", picture)
                shown.append({"view": panel.view, "image": relative(path, self.layout.base),
                              "empty": panel.empty is not None, "empty_reason": panel.empty})
                panels.append(Panel(picture, (view.title, f"view {panel.view}"), panel.empty))
        sheet = contact_sheet(f"{item.rel} · {self.model}", panels)
        sheet_path = self.write(folder / "summary.png", sheet)
        entry = {
            "input": relative(item.path, self.layout.base),
            "input_tensor": tensor_path,
            "predictions": [{"index": p.index, "label": p.label, "probability": float(p.probability)}
                            for p in first.predictions],
            "outputs": outputs,
        }
        if shown:
            entry["views"] = shown
        if item.frame is not None:
            entry["frame"] = item.frame
        self.items.append(entry)
        top = first.predictions[0] if first.predictions else None
        said = f"class {top.index} {top.label} (p={top.probability:.3f})" if top else "no predictions"
        self.sink.item(item, first, [said], [sheet_path])

    def report(self) -> dict:
        return {"model": self.model, "items": self.items}


def run(args: argparse.Namespace) -> int:
    names = parse_algorithms(args.algorithms)
    if getattr(args, "ray", None) is not None:  # the same work on a Ray cluster (convscope.scale)
        from convscope.scale.explain import run as run_on_ray

        return run_on_ray(args, names)
    inputs, layout = session.open_io(args, folder_only=True)
    layout.check_free([layout.base / "report.json"] + ([layout.base / "summary.png"] if inputs.kind == "image" else []))
    bundle = load_model_from_args(args)
    class_index = check_class(bundle, args.class_index)
    versus = check_class(bundle, args.versus)
    top_k = 1 if class_index is not None else check_top_k(bundle, args.top_k, 1)
    sink = session.Sink(layout, inputs, args.quiet)
    writer = _Writer(layout, bundle, args.save_raw, style_of(args), sink)
    with session.engine_for(bundle) as engine:
        layers = session.layers(engine, bundle)
        cam_layer = conv_layer(layers, args.layer, args.conv_index)
        unit = None
        if args.channel is not None:
            layer, index = unit_of(layers, args.channel, "conv")
            unit = Target("channel", index, layer.name)
        elif args.neuron is not None:
            layer, index = unit_of(layers, args.neuron, "linear")
            unit = Target("neuron", index, layer.name)
        if unit is not None:
            unit = replace(unit, versus=versus, negate=args.counterfactual)
        request = ViewRequest(cam_layer=cam_layer.name, algorithms=names, panels=views.for_stills(),
                              top_k=max(top_k, 5), keep_raw=True, colormap=engine_colormap(args),
                              options=algorithm_options(args))

        def process(items, frames) -> None:
            targets = run_targets(engine, frames, request, top_k, class_index, unit, versus, args.counterfactual)
            for item, frame, results in zip(items, frames, targets, strict=True):
                writer.item(item, results, frame)
            for line in writer.warnings:
                print(line, file=sys.stderr)
            writer.warnings.clear()

        try:
            summary = run_items(inputs, process, batch_size=args.batch_size, strict=args.strict,
                                progress=False if args.quiet else None)
        finally:
            sink.close()
    report = write_json(layout.claim(layout.base / "report.json"), writer.report())
    if not args.quiet:
        count = sum(len(i["outputs"]) for i in writer.items)
        print(f"wrote {count} map(s) for {summary.done} image(s), summary.png and {report}", file=sys.stderr)
    summary.report(sys.stderr)
    return 0
