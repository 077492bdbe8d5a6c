"""Named models: the built-in offline EfficientNet-Lite0, torchvision's classifiers and timm's.

Builtins live in a registry (a decorator that refuses duplicate names); torchvision's list comes
from ``torchvision.models.list_models`` so new torchvision releases need no change here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from convscope.errors import ModelError, WeightsError, suggest
from convscope.models.bundle import Preprocessing
from convscope.models.labels import labels_for
from convscope.models.weights import is_download_failure, load_into, read_state_dict, seeded


@dataclass(frozen=True)
class Built:
    """A freshly built module with what the zoo knows about it."""

    module: nn.Module
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    source: str


Builder = Callable[[str], Built]
_BUILTINS: dict[str, Builder] = {}


def register_builtin(name: str) -> Callable[[Builder], Builder]:
    """Register a builder ``f(weights) -> Built`` for a built-in model name."""

    def wrap(fn: Builder) -> Builder:
        if name in _BUILTINS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILTINS[name] = fn
        return fn

    return wrap


def builtin_names() -> list[str]:
    _ensure_builtins()
    return sorted(_BUILTINS)


def torchvision_names() -> list[str]:
    """Classification models from torchvision's own registry."""
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def list_models(pattern: str = "*") -> list[str]:
    """Every model name ``load_model`` accepts without a prefix, filtered by an fnmatch pattern."""
    names = builtin_names() + torchvision_names()
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def _ensure_builtins() -> None:
    # Importing the module registers its builders; kept lazy so `import convscope` stays light.
    from convscope.models import efficientnet_lite  # noqa: F401


def build_named(name: str, weights: str) -> Built:
    """Build a model by name: a builtin, ``timm:NAME`` or a torchvision classifier."""
    _ensure_builtins()
    if name in _BUILTINS:
        return _BUILTINS[name](weights)
    if name.startswith("timm:"):
        return _build_timm(name.removeprefix("timm:"), weights)
    if name in torchvision_names():
        return _build_torchvision(name, weights)
    raise ModelError(f"unknown model {name!r}{suggest(name, list_models())}; `convscope models` lists them")


def _apply_weights(module: nn.Module, weights: str) -> None:
    if weights not in ("random", "default"):
        load_into(module, read_state_dict(weights), weights)


def _build_torchvision(name: str, weights: str) -> Built:
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    default = enum.DEFAULT
    if weights == "default":
        try:
            module = tvm.get_model(name, weights=default)
        except Exception as exc:
            if is_download_failure(exc) or "urlopen" in str(exc).lower():
                raise WeightsError(
                    f"could not download the weights for {name} (offline?): "
                    "use --weights random or --weights PATH"
                ) from None
            raise WeightsError(f"could not load the weights for {name}: {str(exc).splitlines()[0]}") from None
    else:
        with seeded():
            module = tvm.get_model(name, weights=None)
        _apply_weights(module, weights)
    t = default.transforms()
    crop = t.crop_size[0] if isinstance(t.crop_size, list | tuple) else t.crop_size
    resize = t.resize_size[0] if isinstance(t.resize_size, list | tuple) else t.resize_size
    prep = Preprocessing(
        input_size=(crop, crop),
        resize_size=resize,
        mean=tuple(t.mean),
        std=tuple(t.std),
        interpolation="bicubic" if "BICUBIC" in str(t.interpolation) else "bilinear",
    )
    categories = tuple(default.meta.get("categories") or ())
    return Built(module, prep, categories or labels_for(1000), "torchvision")


def _build_timm(name: str, weights: str) -> Built:
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError:
        raise ModelError("timm models need the timm package: pip install 'convscope[timm]'") from None
    if name not in timm.list_models():
        raise ModelError(f"unknown timm model {name!r}{suggest(name, timm.list_models())}")
    if weights == "default":
        try:
            module = timm.create_model(name, pretrained=True)
        except Exception as exc:
            raise WeightsError(
                f"could not download the weights for timm:{name} (offline?): use --weights random or --weights PATH"
                f" ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
    else:
        with seeded():
            module = timm.create_model(name, pretrained=False)
        _apply_weights(module, weights)
    cfg = resolve_data_config({}, model=module)
    _, h, w = cfg["input_size"]
    crop_pct = float(cfg.get("crop_pct", 0.875))
    prep = Preprocessing(
        input_size=(h, w),
        resize_size=int(round(min(h, w) / crop_pct)),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation="bicubic" if cfg.get("interpolation") == "bicubic" else "bilinear",
    )
    return Built(module, prep, labels_for(getattr(module, "num_classes", 1000)), "timm")
