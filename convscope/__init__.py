"""convscope: see what a convolutional network does, live.

The public entry points are :func:`convscope.explain` and :func:`convscope.live` (one call each,
for notebooks and scripts), :func:`convscope.models.load_model`, :class:`convscope.engine.Engine`
and :func:`convscope.sources.open_source`; the ``convscope`` command wraps them.

Importing ``convscope`` imports neither torch nor anything else heavy: ``explain`` and ``live``
are loaded on first use.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # costs 50-700 ms: only when asked

    try:
        return version("convscope")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"

__all__ = ["__version__", "explain", "live"]

_LAZY = {"explain": "convscope.api", "live": "convscope.api", "Explanation": "convscope.api",
         "LiveDashboard": "convscope.api"}


def __getattr__(name: str):
    if name == "__version__":
        return _version()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")
