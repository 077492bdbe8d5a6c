"""Turning a ``--weights`` value into parameters: ``default``, ``random`` or a state_dict file."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from convscope.errors import WeightsError

RANDOM_SEED = 0


@contextlib.contextmanager
def seeded(seed: int = RANDOM_SEED) -> Iterator[None]:
    """Build a model with reproducible random weights without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def strip_module_prefix(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Drop the ``module.`` prefix ``nn.DataParallel`` / DDP put on every key, keeping ``_metadata``.

    Why keep it: ``state_dict()`` carries a ``_metadata`` attribute with each module's format
    ``version``, and ``load_state_dict`` passes it to ``_load_from_state_dict``. Modules that changed
    their format check it (torchvision's MNASNet refuses ``version None``; BatchNorm uses it to
    upgrade old files), so a copy without it is not the same state_dict. Its keys are module
    prefixes and are stripped like the parameter names; a wrapper's own root entry (``""``) gives way
    to the wrapped model's (``"module"``).
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict((k.removeprefix("module."), v) for k, v in state.items())
    meta = getattr(state, "_metadata", None)
    if meta is not None:
        wrapped = "module" in meta
        new_meta: OrderedDict[str, dict] = OrderedDict()
        for key, value in meta.items():
            if wrapped and key == "":
                continue  # the DataParallel wrapper's own entry
            new_key = "" if wrapped and key == "module" else key.removeprefix("module.")
            new_meta[new_key] = value
        out._metadata = new_meta  # type: ignore[attr-defined]
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state_dict saved with ``torch.save``; unwraps ``{"state_dict": ...}`` checkpoints.

    Uses ``weights_only=True``: a weights file never runs code. The state_dict's ``_metadata``
    (per-module format versions) survives, see :func:`strip_module_prefix`.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights file {p}: {first}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{p} is not a state_dict (a mapping of parameter names to tensors)")
    return strip_module_prefix(obj)


def load_into(module: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` strictly, turning a mismatch into a one-line error."""
    try:
        result = module.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError, KeyError) as exc:  # shape mismatches, modules' own format checks
        # torch's message is "Error(s) in loading state_dict for X:" then one indented line per problem
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        detail = lines[1] if lines[0].startswith("Error(s) in loading") and len(lines) > 1 else lines[0]
        raise WeightsError(f"weights in {origin} do not fit this architecture: {detail}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise WeightsError(f"weights in {origin} do not fit this architecture: " + ", ".join(parts))


def is_download_failure(exc: BaseException) -> bool:
    """True for the errors a failed weight download raises (no network, DNS, HTTP, SSL)."""
    import socket
    import ssl
    import urllib.error

    return isinstance(exc, urllib.error.URLError | socket.error | ssl.SSLError | ConnectionError | TimeoutError)
