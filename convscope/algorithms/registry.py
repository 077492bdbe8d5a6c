"""The algorithm registry: the one list the engine, the CLI choices and the UI menu come from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from convscope.errors import RequestError, suggest

if TYPE_CHECKING:
    from convscope.algorithms.base import Algorithm

_REGISTRY: dict[str, Algorithm] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: instantiate and register an algorithm under ``cls.name``.

    Raises:
        ValueError: when the name is taken (two plugins must not silently shadow each other).
    """
    name = cls.name
    if name in _REGISTRY:
        raise ValueError(f"an algorithm named {name!r} is already registered ({_REGISTRY[name]!r})")
    if cls.target_role not in ("cam", "selection"):
        raise ValueError(f"algorithm {name!r}: target_role must be 'cam' or 'selection'")
    _REGISTRY[name] = cls()
    ordered = sorted(_REGISTRY.items(), key=lambda kv: kv[1].order)  # stable: ties keep import order
    _REGISTRY.clear()
    _REGISTRY.update(ordered)
    return cls


def unregister(name: str) -> None:
    """Remove an algorithm (for tests and plugins that replace themselves)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Algorithm:
    """The algorithm registered as ``name``; a one-line :class:`RequestError` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RequestError(
            f"unknown algorithm {name!r}: choose from {', '.join(_REGISTRY)}{suggest(name, _REGISTRY)}"
        ) from None


def names() -> tuple[str, ...]:
    """Registered names in menu order (``Algorithm.order``)."""
    return tuple(_REGISTRY)


def all() -> tuple[Algorithm, ...]:  # noqa: A001 - the registry's natural name
    """Registered algorithms in menu order (``Algorithm.order``)."""
    return tuple(_REGISTRY.values())
