"""``convscope guided-backprop``: guided backpropagation of a class, a conv channel or an FC neuron.

Target, as in the seed: a class logit (default: the top-1), the maximum of one channel of a conv
layer (``--layer L --channel C``), or one neuron of a linear layer (``--neuron LAYER:INDEX``).
One image in, one image out: ``-o out.png`` is written as ``out.png``.
"""

from __future__ import annotations

import argparse
import sys

from convscope.cli.common import add_command, add_model_options, load_model_from_args
from convscope.engine import Target, ViewRequest
from convscope.errors import UsageError
from convscope.stills import session
from convscope.stills.options import (
    add_colormap_option,
    add_io_options,
    add_style_options,
    check_class,
    check_unit,
    conv_layer,
    engine_colormap,
    style_of,
    unit_of,
)
from convscope.stills.runner import run_items
from convscope.stills.targets import resolved_target, run_targets


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "guided-backprop", "guided backpropagation for an image, a folder or a video",
        description="Write the guided backpropagation of a target (the top-1 class by default) as "
        "{stem}{ext}. OUTPUT: for one image a file name or a folder; for a folder or video a folder "
        "mirroring the input.",
    )
    add_io_options(p, "output file name (one image), folder, or for a video also a .mp4/.webm/.gif file")
    add_colormap_option(p)
    add_style_options(p)
    t = p.add_argument_group("target (one of)")
    t.add_argument("--class", dest="class_index", type=int, metavar="C", help="the logit of class C")
    t.add_argument("--channel", type=int, metavar="C",
                   help="the maximum of channel C of --layer (default layer: the one that feeds the head)")
    t.add_argument("--layer", metavar="NAME", help="the conv layer of --channel (name or index, -1 = last)")
    t.add_argument("--neuron", metavar="LAYER:INDEX",
                   help="neuron INDEX of linear layer LAYER (name or index among linear layers)")
    add_model_options(p)
    p.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> None:
    chosen = [flag for flag, value in (("--class", args.class_index), ("--channel", args.channel),
                                       ("--neuron", args.neuron)) if value is not None]
    if len(chosen) > 1:
        raise UsageError(f"guided-backprop: choose one target, not {' and '.join(chosen)}")
    if args.layer is not None and args.channel is None:
        raise UsageError("guided-backprop: --layer selects the layer of --channel; add --channel C")


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    inputs, layout = session.open_io(args)
    session.check_outputs_free(inputs, layout, [""])
    bundle = load_model_from_args(args)
    class_index = check_class(bundle, args.class_index)
    style = style_of(args)
    with session.engine_for(bundle, optimize=inputs.kind != "image") as engine:
        unit = None
        if args.channel is not None:
            layer = conv_layer(session.layers(engine, bundle), args.layer, None)
            unit = Target("channel", check_unit(layer, args.channel), layer.name)
        elif args.neuron is not None:
            layer, index = unit_of(session.layers(engine, bundle), args.neuron, "linear")
            unit = Target("neuron", index, layer.name)
        request = ViewRequest(algorithms=("guided_backprop",), panels=("predictions",), top_k=5,
                              colormap=engine_colormap(args), keep_raw=True)
        sink = session.Sink(layout, inputs, args.quiet, args.every)

        def process(items, frames) -> None:
            targets = run_targets(engine, frames, request, 1, class_index, unit)
            for item, frame, results in zip(items, frames, targets, strict=True):
                result = results[0]
                gb = result.maps["guided_backprop"]
                path = sink.put(item, "", session.draw(gb, result, frame, bundle, style))
                note = "" if gb.rule in ("guided", "standard") else f" [rule: {gb.rule}]"
                sink.item(item, result, [f"{session.caption(gb, result, bundle.labels)}{note}"], [path])
                if gb.empty is not None:
                    where = None if inputs.kind == "image" else item.rel
                    print(session.blank_warning(gb, resolved_target(gb, result), bundle.labels, where),
                          file=sys.stderr)

        try:
            summary = run_items(inputs, process, batch_size=args.batch_size, strict=args.strict,
                                progress=False if args.quiet else None)
        finally:
            sink.close()
    if not args.quiet:
        for line in sink.closing_lines():
            print(line, file=sys.stderr)
    session.finish(summary, layout, inputs, quiet=args.quiet, stream=sys.stderr)
    return 0
