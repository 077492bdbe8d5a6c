"""``convscope layers``: every module a model runs, in order, with its kind, shape and layout."""

from __future__ import annotations

import argparse
import json

from convscope.cli.common import add_command, add_model_options, load_architecture_from_args
from convscope.models import discover_layers
from convscope.models.layers import LayerInfo

KINDS = ("conv", "block", "norm", "act", "tokens", "linear")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "layers", "list the layers a model runs, in execution order, and the default layer")
    add_model_options(p)
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {index, name, kind, shape, layout, grid, prefix, channels, calls, default}")
    p.add_argument("--kind", choices=KINDS, help="only this kind of layer")
    p.set_defaults(func=run)


def _what(la: LayerInfo) -> str:
    """How the layer can be looked at: ``map 512x7x7``, ``tokens 14x14+1 x192``, ``vector 1000``."""
    if la.calls > 1:
        return f"runs {la.calls}x (not selectable)"
    if la.layout == "tokens" and la.grid:
        extra = f"+{la.prefix}" if la.prefix else ""
        return f"tokens {la.grid[0]}x{la.grid[1]}{extra} x{la.shape[-1]}"
    if la.layout == "channels_last" and la.grid:
        return f"channels_last {la.grid[0]}x{la.grid[1]} x{la.shape[-1]}"
    if la.layout in ("map", "vector"):
        return f"{la.layout} " + "x".join(map(str, la.shape))
    return "x".join(map(str, la.shape)) or "?"


def run(args: argparse.Namespace) -> int:
    bundle = load_architecture_from_args(args)
    every = discover_layers(bundle)
    layers = [la for la in every if args.kind is None or la.kind == args.kind]
    if args.json:
        print(json.dumps([la.as_dict() for la in layers]))
        return 0
    counts = ", ".join(f"{sum(la.kind == k for la in every)} {k}" for k in KINDS if any(la.kind == k for la in every))
    print(f"{bundle.name}: {len(every)} layers ({counts})")
    default = next((la for la in every if la.default), None)
    if default is not None:
        print(f"default layer (feeds the head; Grad-CAM): {default.name}")
        from convscope.models.layers import grid_layer

        print(f"activation grid default (a middle layer with at most 256 channels): {grid_layer(every)}")
    width = max((len(la.name) for la in layers), default=4)
    print(f"{'index':>5}  {'name':<{width}}  {'kind':<6}  output")
    for la in layers:
        mark = "  <- default" if la.default else ""
        print(f"{la.index:>5}  {la.name:<{width}}  {la.kind:<6}  {_what(la)}{mark}")
    return 0
