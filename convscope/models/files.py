"""Models from files and from users' code: TorchScript, pickled modules, ONNX, ``pkg.mod:callable``."""

from __future__ import annotations

import importlib
import re
import sys
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from convscope.errors import ModelError

MODEL_FILE_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit", ".pkl", ".onnx")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def looks_like_callable(spec: str) -> bool:
    """``package.module:factory``; a path with a drive letter or separators is not one."""
    return bool(_CALLABLE.match(spec)) and not spec.startswith("timm:")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_file(path: Path, trust_pickle: bool) -> tuple[nn.Module, str, tuple[int, int] | None]:
    """Load a model file; returns the module, how it was read and the input size the file fixes.

    Only ONNX files carry an input size (their graph input's static height and width); a model
    exported at 256x256 fails on any other size, so the loader uses it instead of 224.
    """
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        from convscope.models.onnx_import import load_onnx

        module, input_hw = load_onnx(path)
        return module, "onnx", input_hw
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names):
            try:
                with warnings.catch_warnings():  # torch deprecates TorchScript; users' archives still load
                    warnings.simplefilter("ignore", FutureWarning)
                    return torch.jit.load(str(path), map_location="cpu"), "torchscript", None
            except Exception as exc:
                raise ModelError(f"cannot load TorchScript archive {path}: {_first_line(exc)}") from None
    if not trust_pickle:
        raise ModelError(
            f"{path} is not a TorchScript archive; loading a pickled module runs code from the file, "
            "so pass --trust-pickle if you trust it (or save a state_dict and use --weights)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelError(f"cannot unpickle {path}: {_first_line(exc)}") from None
    if isinstance(obj, dict):
        raise ModelError(f"{path} holds a state_dict, not a model: name the architecture with -m and pass --weights {path}")
    if not isinstance(obj, nn.Module):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a torch.nn.Module")
    return obj, "pickle", None


def load_callable(spec: str) -> nn.Module:
    """Import ``package.module:factory`` and call it with no arguments."""
    mod_name, _, attr = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # users' own code in the working directory, like `python -m`
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ModelError(f"cannot import {mod_name!r} for model {spec!r}: {_first_line(exc)}") from None
    factory = getattr(mod, attr, None)
    if factory is None:
        raise ModelError(f"module {mod_name!r} has no attribute {attr!r}")
    try:
        obj = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    except Exception as exc:
        raise ModelError(f"{spec}() failed: {_first_line(exc)}") from None
    if not isinstance(obj, nn.Module):
        raise ModelError(f"{spec} returned a {type(obj).__name__}, not a torch.nn.Module")
    return obj
