"""Flags shared by ``gradcam``, ``guided-backprop`` and ``explain``, and their validation.

Everything a user can get wrong on these flags is checked before the first image is processed, so
a typo fails in a second with one line instead of after a folder's worth of work.
"""

from __future__ import annotations

import argparse

from convscope.cli.common import count_arg
from convscope.errors import LayerError, RequestError
from convscope.models import LayerInfo, ModelBundle, resolve_layer
from convscope.models.layers import default_layer
from convscope.render.colormaps import COLORMAPS


def add_io_options(parser: argparse.ArgumentParser, output_help: str) -> None:
    """``-i/--input``, ``-o/--output`` and the folder/video options."""
    parser.add_argument("-i", "--input", required=True, metavar="INPUT",
                        help="an image, a folder of images (recursive) or a video file")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT", help=output_help)
    g = parser.add_argument_group("folders and videos")
    g.add_argument("--every", type=int, default=1, metavar="N", help="videos: use every N-th frame (default: 1)")
    g.add_argument("--batch-size", type=int, default=8, metavar="B", help="images per engine batch (default: 8)")
    g.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of skipping it")
    g.add_argument("--ext", metavar="EXT", help="image format of the outputs, e.g. png or jpg "
                   "(default: the output name's, else the input's, else png)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no per-image lines")
    g.add_argument("--overwrite", action="store_true",
                   help="replace output files that exist (default: stop with an error before replacing any)")
    g.add_argument("--max-pixels", type=count_arg, default=None, metavar="N",
                   help="largest image (width x height) to decode, checked from its header "
                   "(default: Pillow's 89,478,485, or CONVSCOPE_MAX_PIXELS)")


def add_colormap_option(parser: argparse.ArgumentParser) -> None:
    """``--colormap``, with the names the engine's renderer knows, and ``auto`` (one per kind of map)."""
    parser.add_argument("--colormap", choices=("auto", *COLORMAPS), default="auto", metavar="NAME",
                        help="colormap of the maps: auto (jet for Grad-CAM-like heatmaps, inferno for "
                        "magnitudes such as saliency, RdBu_r for signed gradients) or one of "
                        f"{', '.join(COLORMAPS)} (default: auto)")


def add_style_options(parser: argparse.ArgumentParser, gradients: bool = True) -> None:
    """``--size``, ``--annotate`` and ``--gradients``: how still outputs look."""
    g = parser.add_argument_group("pictures")
    g.add_argument("--size", choices=("input", "model"), default="input",
                   help="input: maps and overlays at the input's own resolution and aspect ratio (default); "
                   "model: at the network's input size (224x224 for most models)")
    g.add_argument("--annotate", action="store_true",
                   help="add a caption (class, probability, method, layer) and a colour bar to each picture")
    if gradients:
        g.add_argument("--gradients", choices=("rgb", "signed"), default="rgb",
                       help="input gradients (guided backprop ...) as the usual RGB picture around grey, or "
                       "signed: summed over colours, diverging colormap with white at zero (default: rgb)")


def style_of(args: argparse.Namespace):
    """The :class:`convscope.stills.present.Style` the flags ask for."""
    from convscope.stills.present import Style

    return Style(size=getattr(args, "size", "input"), colormap=getattr(args, "colormap", "auto"),
                 annotate=bool(getattr(args, "annotate", False)), gradients=getattr(args, "gradients", "rgb"))


def engine_colormap(args: argparse.Namespace) -> str:
    """The colormap the engine itself renders with (the stills redraw from the raw maps)."""
    name = getattr(args, "colormap", "auto")
    return "jet" if name == "auto" else name


def add_layer_options(parser: argparse.ArgumentParser, what: str = "Grad-CAM's conv layer") -> None:
    """``--layer NAME`` or ``--conv-index N`` (seed spelling ``--convindex``)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--layer", metavar="NAME", help=f"{what} by qualified name (see `convscope layers`)")
    g.add_argument("--conv-index", "--convindex", dest="conv_index", type=int, metavar="N",
                   help=f"{what} by index among conv layers in execution order (-1 = last, the default)")


def add_algorithm_options(parser: argparse.ArgumentParser) -> None:
    """Options of the algorithms (issue 13): smoothing, Score-CAM/Ablation-CAM channels, IG, SmoothGrad."""
    g = parser.add_argument_group("algorithm options")
    g.add_argument("--aug-smooth", action="store_true",
                   help="every gradient CAM averaged over the horizontal flip and intensities 0.9/1/1.1 (6 extra "
                        "rows); Score-CAM and Ablation-CAM are not smoothed (report.json's rows says so)")
    g.add_argument("--eigen-smooth", action="store_true",
                   help="every CAM as the first principal component of its weighted activations")
    g.add_argument("--top-channels", type=int, metavar="K",
                   help="Score-CAM and Ablation-CAM use the K most active channels (default: every channel)")
    g.add_argument("--steps", type=int, default=32, metavar="N", help="Integrated Gradients' steps (default 32)")
    g.add_argument("--baseline", choices=("black", "blur"), default="black",
                   help="Integrated Gradients' baseline (default black)")
    g.add_argument("--samples", type=int, default=32, metavar="N", help="SmoothGrad's noisy samples (default 32)")
    g.add_argument("--noise", type=float, default=0.15, metavar="S",
                   help="SmoothGrad's noise: sigma as a share of the input's range (default 0.15)")
    g.add_argument("--seed", type=int, default=0, help="seed of SmoothGrad's noise (default 0): same seed, same maps")


def algorithm_options(args: argparse.Namespace) -> tuple[tuple[str, object], ...]:
    """``ViewRequest.options`` from the flags of :func:`add_algorithm_options` (validated)."""
    from convscope.algorithms.options import Options

    return Options.of({
        "aug_smooth": args.aug_smooth, "eigen_smooth": args.eigen_smooth, "top_channels": args.top_channels,
        "steps": args.steps, "baseline": args.baseline, "samples": args.samples, "noise": args.noise,
        "seed": args.seed,
    }).pairs()


def add_class_options(parser: argparse.ArgumentParser, default_top_k: int | None) -> None:
    """``--class C`` and ``--top-k K`` (exclusive: a fixed class is one target)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--class", dest="class_index", type=int, metavar="C",
                   help="explain this class index instead of the top predictions")
    default = f"default: {default_top_k}" if default_top_k else "default: 1"
    g.add_argument("--top-k", type=int, metavar="K", help=f"explain each of the top K predicted classes ({default})")
    parser.add_argument("--versus", type=int, metavar="B",
                        help="contrast: explain why the class rather than class B (the score minus B's logit)")
    parser.add_argument("--counterfactual", action="store_true",
                        help="explain the negated score: what speaks against the class (Grad-CAM paper)")


def conv_layer(layers: list[LayerInfo], name: str | None, index: int | None) -> LayerInfo:
    """The layer named by ``--layer`` (any feature map) or ``--conv-index`` (among conv layers).

    By default the layer that feeds the head (:func:`convscope.models.layers.head_layer`).
    """
    if name is not None:
        return resolve_layer(layers, name, "conv")
    if index is None:
        found = default_layer(layers)
        if found is not None:
            return found
    return resolve_layer(layers, -1 if index is None else index, "conv")


def check_class(bundle: ModelBundle, index: int | None) -> int | None:
    """``index`` when it names one of the model's classes; a one-line error otherwise."""
    if index is not None and not 0 <= index < bundle.num_classes:
        raise RequestError(f"class index {index} is out of range: {bundle.name} has {bundle.num_classes} "
                           f"classes (0..{bundle.num_classes - 1})")
    return index


def check_top_k(bundle: ModelBundle, k: int | None, default: int) -> int:
    k = default if k is None else k
    if not 1 <= k <= bundle.num_classes:
        raise RequestError(f"--top-k must be between 1 and {bundle.num_classes}, got {k}")
    return k


def unit_of(layers: list[LayerInfo], spec: str, kind: str) -> tuple[LayerInfo, int]:
    """Parse ``LAYER:INDEX`` (a channel of a conv layer or a neuron of a linear layer).

    ``LAYER`` is a qualified name or an index among layers of that kind (``-1:5`` = neuron 5 of
    the last linear layer).
    """
    what = "channel" if kind == "conv" else "neuron"
    layer_key, sep, idx = spec.rpartition(":")
    if not sep or not layer_key or not idx.lstrip("-").isdigit():
        raise RequestError(f"expected LAYER:INDEX for the {what}, got {spec!r}")
    layer = resolve_layer(layers, layer_key, kind)  # type: ignore[arg-type]
    return layer, check_unit(layer, int(idx), what)


def check_unit(layer: LayerInfo, index: int, what: str = "channel") -> int:
    """``index`` when it is a channel / neuron of ``layer``; a one-line error otherwise.

    A neuron of a linear layer applied to tokens or a map is an index into its last dimension.
    """
    count = layer.channels
    if index < 0 or (count is not None and index >= count):
        span = f"0..{count - 1}" if count else "0 or more"
        raise LayerError(f"{what} {index} is out of range for {layer.name} (use {span})")
    return index
