"""``convscope gradcam``: Grad-CAM overlays of the top-K classes for images, folders and videos.

The seed's command, kept spelling for spelling (``-i -o -n --convindex``, ``{stem}_0``,
``{stem}_1``), on top of the same engine the live view uses.
"""

from __future__ import annotations

import argparse
import sys

from convscope import algorithms
from convscope.cli.common import add_command, add_model_options, load_model_from_args
from convscope.engine import ViewRequest
from convscope.stills import session
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
)
from convscope.stills.runner import run_items
from convscope.stills.targets import resolved_target, run_targets

DEFAULT_TOP_K = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "gradcam", "Grad-CAM overlays for an image, a folder or a video",
        description="Write the Grad-CAM overlay of each of the top-K classes as {stem}_{k}{ext} "
        "(k = 0 is the top-1). OUTPUT: for one image a file name (out.jpg -> out_0.jpg, out_1.jpg) "
        "or a folder; for a folder or video a folder mirroring the input.",
    )
    add_io_options(p, "output file name (one image), folder, or for a video also a .mp4/.webm/.gif file")
    add_colormap_option(p)
    add_style_options(p, gradients=False)
    add_layer_options(p)
    add_class_options(p, DEFAULT_TOP_K)
    cams = [a.name for a in algorithms.all() if a.display == "heatmap"]
    p.add_argument("--method", default="gradcam", choices=cams, metavar="NAME",
                   help=f"the CAM to draw (default gradcam): {', '.join(cams)}")
    add_algorithm_options(p)
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs, layout = session.open_io(args)
    top_k_given = 1 if args.class_index is not None else (args.top_k or DEFAULT_TOP_K)
    session.check_outputs_free(inputs, layout, [f"_{k}" for k in range(top_k_given)])
    bundle = load_model_from_args(args)
    class_index = check_class(bundle, args.class_index)
    versus = check_class(bundle, args.versus)
    top_k = 1 if class_index is not None else check_top_k(bundle, args.top_k, DEFAULT_TOP_K)
    style = style_of(args)
    # one image: the model copy's folding and its check cost more than they save
    with session.engine_for(bundle, optimize=inputs.kind != "image") as engine:
        layer = conv_layer(session.layers(engine, bundle), args.layer, args.conv_index)
        request = ViewRequest(cam_layer=layer.name, algorithms=(args.method,), panels=("predictions",),
                              top_k=max(top_k, 5), colormap=engine_colormap(args), keep_raw=True,
                              options=algorithm_options(args))
        sink = session.Sink(layout, inputs, args.quiet, args.every)

        def process(items, frames) -> None:
            targets = run_targets(engine, frames, request, top_k, class_index, versus=versus,
                                  negate=args.counterfactual)
            for item, frame, results in zip(items, frames, targets, strict=True):
                files, captions = [], []
                for k, result in enumerate(results):
                    cam = result.maps[args.method]
                    files.append(sink.put(item, f"_{k}", session.draw(cam, result, frame, bundle, style)))
                    captions.append(session.caption(cam, result, bundle.labels))
                    if cam.empty is not None:
                        target = resolved_target(cam, result)
                        where = None if inputs.kind == "image" else item.rel
                        print(session.blank_warning(cam, target, bundle.labels, where), file=sys.stderr)
                sink.item(item, results[0], captions, files)

        try:
            summary = run_items(inputs, process, batch_size=args.batch_size, strict=args.strict,
                                progress=False if args.quiet else None)
        finally:
            sink.close()
    if not args.quiet:
        print(f"{'Grad-CAM' if args.method == 'gradcam' else args.method} layer: {layer.name}", file=sys.stderr)
        for line in sink.closing_lines():
            print(line, file=sys.stderr)
    session.finish(summary, layout, inputs, quiet=args.quiet, stream=sys.stderr)
    return 0
