"""``convscope evaluate``: deletion / insertion AUC, a ROAD-style score and the randomisation sanity check.

Per method (any registered algorithm) and image: how fast the top-1 probability falls when the
most important pixels are removed (deletion, Petsiuk et al. 2018), how fast it rises when they
are put back into a blurred image (insertion), a remove-and-debias score (ROAD, Rong et al. 2022)
and how much the map changes when the model's top layers are randomised (Adebayo et al. 2018).
Writes metrics.csv, summary.csv, summary.json, curves.png and sanity.png into OUTDIR.
"""

from __future__ import annotations

import argparse
import sys

from convscope.cli.common import add_command, add_model_options, load_model_from_args
from convscope.errors import InputError, UsageError
from convscope.scale.options import add_ray_options
from convscope.stills.options import add_layer_options, conv_layer

DEFAULT_ALGORITHMS = "gradcam,gradcam_pp,guided_backprop,saliency"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "evaluate", "score explanation methods: deletion/insertion AUC, ROAD, sanity check",
                    description=__doc__.split("\n\n", 1)[1])
    p.add_argument("-i", "--input", required=True, metavar="DATASET", help="an image or a folder of images (recursive)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created when missing)")
    p.add_argument("--algorithms", default=DEFAULT_ALGORITHMS, metavar="A,B,...|all",
                   help=f"methods to evaluate (default: {DEFAULT_ALGORITHMS}); a 'random' baseline is always added")
    add_layer_options(p, "the CAM algorithms' layer")
    g = p.add_argument_group("metrics")
    g.add_argument("--steps", type=int, default=20, metavar="K", help="deletion/insertion steps (default: 20)")
    g.add_argument("--road-fractions", default="0.1,0.2,0.3,0.5,0.7,0.9", metavar="F,F,...",
                   help="ROAD removal fractions (default: 0.1,0.2,0.3,0.5,0.7,0.9)")
    g.add_argument("--sanity-stages", type=int, default=4, metavar="S",
                   help="randomisation stages, top layer first, the last all layers (default: 4; 0 = off)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random baseline, ROAD noise and re-initialisation")
    g.add_argument("--batch-size", type=int, default=8, metavar="B", help="images per batch (default: 8)")
    g.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N images")
    g.add_argument("--strict", action="store_true", help="stop at the first unreadable file")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_options(p)
    add_ray_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from convscope.cli.explain import parse_algorithms
    from convscope.evaluate import report
    from convscope.evaluate.evaluator import EvalSettings
    from convscope.evaluate.run import run_local, run_ray
    from convscope.stills import session
    from convscope.stills.inputs import InputSet
    from convscope.stills.outputs import ensure_dir

    names = parse_algorithms(args.algorithms)
    if args.steps < 1 or args.batch_size < 1 or args.sanity_stages < 0:
        raise UsageError("evaluate: --steps and --batch-size must be 1 or more, --sanity-stages 0 or more")
    try:
        fractions = tuple(float(f) for f in args.road_fractions.split(","))
    except ValueError:
        raise UsageError(f"evaluate: --road-fractions must be numbers, got {args.road_fractions!r}") from None
    if not fractions or not all(0 < f < 1 for f in fractions):
        raise UsageError("evaluate: --road-fractions must lie strictly between 0 and 1")
    args.every, args.ext = 1, None
    inputs, _ = session.open_io(args, folder_only=True)
    if inputs.kind == "video":
        raise UsageError("evaluate takes an image or a folder of images")
    out = ensure_dir(Path(args.output).expanduser())
    items = list(inputs.items)[: args.limit]
    bundle = load_model_from_args(args)
    with session.engine_for(bundle) as engine:
        layers = session.layers(engine, bundle)
    cam = conv_layer(layers, args.layer, args.conv_index).name
    settings = EvalSettings(algorithms=names, cam_layer=cam, steps=args.steps, road_fractions=fractions,
                            sanity_stages=args.sanity_stages, seed=args.seed)
    strict_or_single = args.strict or inputs.kind == "image"

    def on_bad(rel: str, reason: str) -> None:
        if strict_or_single:
            raise InputError(f"cannot read {rel}: {reason}")

    if args.ray is not None:
        from convscope.scale.job import model_args_of

        collector, skipped = run_ray(args.ray, args.ray_workers, args.ray_cpus,
                                     [(i, it.rel, str(it.path)) for i, it in enumerate(items)], out,
                                     model_args_of(args), settings, args.batch_size, args.quiet, on_bad)
        from convscope.evaluate.randomize import parametrised_layers

        layer_count = len(parametrised_layers(bundle.module))
    else:
        subset = InputSet(inputs.kind, inputs.root, iter(items), len(items))
        collector, skipped, layer_count = run_local(subset, bundle, settings, args.batch_size, args.strict,
                                                    False if args.quiet else None)
    rows = collector.rows()
    if not rows:
        raise InputError("evaluate: none of the input files could be read")
    meta = {"model": bundle.name, "cam_layer": cam, "images": len(rows) // (len(names) + 1), "steps": args.steps,
            "road_fractions": list(fractions), "sanity_stages": args.sanity_stages, "seed": args.seed,
            "layers_randomisable": layer_count, "score": "softmax probability of the top-1 class"}
    written = report.write_all(out, rows, collector.curves(), meta)
    if not args.quiet:
        print(table(report.summarise(rows, meta)), file=sys.stderr)
        print("wrote " + ", ".join(p.name for p in written) + f" into {out}", file=sys.stderr)
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable file(s):", file=sys.stderr)
        for rel, reason in skipped:
            print(f"  {rel}: {reason}", file=sys.stderr)
    return 0


def table(summary: dict) -> str:
    """The per-method table as text (what a paper would print)."""
    sanity = [k for k in summary["methods"][0] if k.startswith("sanity_rho_top") and not k.endswith("_sem")]
    head = f"{'method':<18}{'deletion↓':>11}{'insertion↑':>12}{'ROAD↑':>9}" + "".join(
        f"{'rho top' + k.removeprefix('sanity_rho_top'):>12}" for k in sanity)
    lines = [head]
    for e in summary["methods"]:
        line = f"{e['method']:<18}{e['deletion_auc']:>11.3f}{e['insertion_auc']:>12.3f}{e['road_score']:>9.3f}"
        line += "".join(f"{e[k]:>12.3f}" if k in e else f"{'':>12}" for k in sanity)
        lines.append(line)
    return "\n".join(lines)
