"""``convscope layers``: the conv and linear layers a model runs, in order, with output shapes."""

from __future__ import annotations

import argparse
import json

from convscope.cli.common import add_command, add_model_options, load_architecture_from_args
from convscope.models import discover_layers


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "layers", "list conv and linear layers in execution order")
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of {index, name, kind, shape}")
    p.add_argument("--kind", choices=("conv", "linear"), help="only this kind of layer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bundle = load_architecture_from_args(args)
    layers = [la for la in discover_layers(bundle) if args.kind is None or la.kind == args.kind]
    if args.json:
        print(json.dumps([la.as_dict() for la in layers]))
        return 0
    width = max((len(la.name) for la in layers), default=4)
    print(f"{bundle.name}: {sum(la.kind == 'conv' for la in layers)} conv, "
          f"{sum(la.kind == 'linear' for la in layers)} linear")
    print(f"{'index':>5}  {'name':<{width}}  {'kind':<6}  shape")
    for la in layers:
        shape = "x".join(map(str, la.shape)) or "?"
        print(f"{la.index:>5}  {la.name:<{width}}  {la.kind:<6}  {shape}")
    return 0
