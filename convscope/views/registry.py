"""The view registry: the panels a frame can show, and which of them a request turns on.

Panel views register their class with ``@register``; every enabled algorithm is shown by a
:class:`~convscope.views.maps.MapView` made for it. :func:`for_request` is the one place that
decides which views a frame computes, for the engine, the server and the still commands alike.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from convscope.errors import RequestError, suggest
from convscope.views.maps import MapView

if TYPE_CHECKING:
    from convscope.request import ViewRequest
    from convscope.views.base import View

_REGISTRY: dict[str, View] = {}


def register(cls: type[View]) -> type[View]:
    """Class decorator: instantiate and register a view under ``cls.name``.

    Raises:
        ValueError: when the name is taken or is not a plain identifier (it travels on the wire
            and in file names).
    """
    name = cls.name
    if name in _REGISTRY:
        raise ValueError(f"a view named {name!r} is already registered ({_REGISTRY[name]!r})")
    if not name.replace("_", "").replace("-", "").isalnum() or not name.isascii():
        raise ValueError(f"view name {name!r} must be ascii letters, digits, '-' or '_'")
    _REGISTRY[name] = cls()
    ordered = sorted(_REGISTRY.items(), key=lambda kv: kv[1].order)  # stable: ties keep registration order
    _REGISTRY.clear()
    _REGISTRY.update(ordered)
    return cls


def unregister(name: str) -> None:
    """Remove a view (for tests and plugins that replace themselves)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> View:
    """The view registered as ``name``; a one-line :class:`RequestError` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RequestError(f"unknown panel {name!r}: use {', '.join(_REGISTRY)}{suggest(name, _REGISTRY)}") from None


def names() -> tuple[str, ...]:
    """Registered panel views in display order."""
    return tuple(_REGISTRY)


def all() -> tuple[View, ...]:  # noqa: A001 - the registry's natural name
    """Registered panel views in display order."""
    return tuple(_REGISTRY.values())


def defaults() -> tuple[str, ...]:
    """The panels a request without an explicit list shows."""
    return tuple(v.name for v in _REGISTRY.values() if v.default or v.required)


def for_stills() -> tuple[str, ...]:
    """The panels the still commands (``explain``) compute: required views and default ``stills`` views."""
    return tuple(v.name for v in _REGISTRY.values() if v.required or (v.default and v.stills))


@cache
def map_view(algorithm: str) -> View:
    """The view that shows ``algorithm``'s map (one instance per algorithm)."""
    return MapView(algorithm)


def for_request(request: ViewRequest) -> tuple[View, ...]:
    """The views a resolved request computes: required ones, the listed panels, one map per algorithm."""
    listed = set(request.panels if request.panels is not None else defaults())
    chosen = [v for v in _REGISTRY.values() if v.required or v.name in listed]
    chosen += [map_view(name) for name in request.algorithms]
    return tuple(v for v in chosen if v.active(request))
