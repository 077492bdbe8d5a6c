"""Options shared by subcommands, so every command spells them the same way."""

from __future__ import annotations

import argparse
import dataclasses

from convscope.errors import UsageError
from convscope.models import DEFAULT_MODEL, ModelBundle, load_model


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors through our exception (exit code 2, one line)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def add_command(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None):
    """Add a subcommand parser that uses :class:`ArgumentParser`."""
    return sub.add_parser(name, help=help, description=description or help)


def _triple(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers, got {text!r}")
    return vals  # type: ignore[return-value]


def add_model_options(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """``-m/--model`` (alias ``-n/--network``, the seed's flag), ``--weights`` and file-model overrides."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "-m", "--model", "-n", "--network", dest="model", default=DEFAULT_MODEL, metavar="MODEL",
        help=f"model name (torchvision name, timm:NAME, {DEFAULT_MODEL}), model file or pkg.mod:callable "
        f"(default: {DEFAULT_MODEL}, works offline)",
    )
    g.add_argument("--weights", default="default", metavar="W",
                   help="default (pretrained), random (seeded) or a state_dict file (default: default)")
    g.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled whole module (runs code)")
    g.add_argument("--labels", metavar="FILE", help="class labels, one per line")
    g.add_argument("--input-size", type=int, metavar="N", help="override the input size (pixels)")
    g.add_argument("--mean", type=_triple, metavar="R,G,B", help="override the normalisation mean (0..1 scale)")
    g.add_argument("--std", type=_triple, metavar="R,G,B", help="override the normalisation std (0..1 scale)")
    g.add_argument("--grid", type=_grid, metavar="HxW",
                   help="token grid of transformer layers when it cannot be inferred (e.g. 14x14)")
    if device:
        g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def count_arg(text: str) -> int:
    """argparse type: a whole number of 1 or more (``1e6`` and ``1_000_000`` are fine)."""
    try:
        value = int(float(text.replace("_", "")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {text!r}")
    return value


def _grid(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected HxW such as 14x14, got {text!r}")
    return int(parts[0]), int(parts[1])


def load_model_from_args(args: argparse.Namespace) -> ModelBundle:
    bundle = load_model(
        args.model,
        weights=args.weights,
        device=getattr(args, "device", "cpu"),
        trust_pickle=args.trust_pickle,
        labels=args.labels,
        input_size=args.input_size,
        mean=args.mean,
        std=args.std,
    )
    grid = getattr(args, "grid", None)
    return dataclasses.replace(bundle, token_grid=grid) if grid else bundle
