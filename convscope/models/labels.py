"""Class labels: ImageNet's from torchvision's metadata (shipped, so available offline) or a file."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from convscope.errors import InputError


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order, as torchvision ships them."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def generic_labels(n: int) -> tuple[str, ...]:
    """Placeholder names for a model whose classes are unknown."""
    return tuple(f"class {i}" for i in range(n))


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Read one label per line (blank trailing lines ignored)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"labels file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {p}: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"labels file {p} is empty")
    return tuple(line.strip() for line in lines)


def labels_for(num_classes: int) -> tuple[str, ...]:
    """ImageNet labels for a 1000-way classifier, generic names otherwise."""
    return imagenet_labels() if num_classes == 1000 else generic_labels(num_classes)
