"""``convscope models``: the model names ``-m`` accepts (builtins and torchvision's registry)."""

from __future__ import annotations

import argparse

from convscope.cli.common import add_command
from convscope.models import DEFAULT_MODEL, list_models


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "models", "list model names (builtins and torchvision classifiers)")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch filter, e.g. 'resnet*'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in list_models(args.pattern):
        print(f"{name}  (built-in, offline)" if name == DEFAULT_MODEL else name)
    print("also: timm:NAME (timm models), a model file (.pt TorchScript, .onnx, pickled with --trust-pickle), "
          "or pkg.module:callable")
    return 0
