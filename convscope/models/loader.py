"""``load_model``: one entry point for every way a user can name a model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from convscope.errors import ModelError
from convscope.models.bundle import ModelBundle, Preprocessing
from convscope.models.files import MODEL_FILE_SUFFIXES, load_callable, load_file, looks_like_callable
from convscope.models.labels import labels_for, read_labels
from convscope.models.weights import load_into, read_state_dict
from convscope.models.zoo import build_named

DEFAULT_MODEL = "efficientnet_lite0"


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU run."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but no CUDA GPU is available (use --device auto or cpu)")
    return dev


def _num_outputs(module: nn.Module, prep: Preprocessing) -> int | None:
    """Width of the model's output, from one dry forward (works for scripted modules too)."""
    h, w = prep.input_size
    try:
        with torch.inference_mode():
            out = module.eval()(torch.zeros(1, 3, h, w))
    except Exception as exc:
        raise ModelError(f"the model fails on a 1x3x{h}x{w} input: {str(exc).strip().splitlines()[0]}") from None
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None


def load_model(
    spec: str = DEFAULT_MODEL,
    weights: str = "default",
    device: str | torch.device = "cpu",
    *,
    trust_pickle: bool = False,
    labels: str | Path | None = None,
    input_size: int | tuple[int, int] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> ModelBundle:
    """Load a model and everything needed to feed it and read its output.

    Args:
        spec: a builtin (``efficientnet_lite0``), a torchvision classifier (``resnet50``),
            ``timm:NAME``, a model file (TorchScript, pickled module, ONNX) or ``pkg.mod:callable``.
        weights: ``default`` (pretrained; downloaded when needed), ``random`` (seeded) or the
            path of a state_dict for the named architecture.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        trust_pickle: allow unpickling a whole module (this runs code from the file).
        labels: a file with one class label per line, overriding the model's.
        input_size, mean, std: preprocessing overrides.

    Returns:
        A :class:`ModelBundle` whose module is in eval mode on ``device``.
    """
    dev = resolve_device(device)
    path = Path(spec)
    scripted = False
    if path.suffix.lower() in MODEL_FILE_SUFFIXES or path.is_file():
        module, source, file_hw = load_file(path, trust_pickle)
        scripted = source == "torchscript"
        if weights not in ("default", "random"):
            load_into(module, read_state_dict(weights), weights)
        prep, names, name = Preprocessing(), None, path.name
        if file_hw is not None and file_hw != prep.input_size:
            ratio = prep.resize_size / min(prep.input_size)
            prep = dataclasses.replace(prep, input_size=file_hw, resize_size=int(round(min(file_hw) * ratio)))
    elif looks_like_callable(spec):
        module, source = load_callable(spec), "callable"
        if weights not in ("default", "random"):
            load_into(module, read_state_dict(weights), weights)
        prep, names, name = Preprocessing(), None, spec
    else:
        built = build_named(spec, weights)
        module, source, prep, names = built.module, built.source, built.preprocessing, built.labels
        name = spec
    if weights == "random":
        name += " (random weights)"
    elif weights != "default":
        name += f" ({Path(weights).name})"

    if input_size is not None:
        hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        ratio = prep.resize_size / min(prep.input_size)
        prep = dataclasses.replace(prep, input_size=hw, resize_size=int(round(min(hw) * ratio)))
    if mean is not None:
        prep = dataclasses.replace(prep, mean=tuple(mean))
    if std is not None:
        prep = dataclasses.replace(prep, std=tuple(std))
    if labels is not None:
        names = read_labels(labels)
    if names is None:
        n = _num_outputs(module, prep)
        names = labels_for(n) if n else ()

    module = module.to(dev).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return ModelBundle(module, prep, tuple(names), name, dev, source, scripted)
