"""convscope: see what a convolutional network does, live.

The public entry points are :func:`convscope.models.load_model`, :class:`convscope.engine.Engine`
and :func:`convscope.sources.open_source`; the ``convscope`` command wraps them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("convscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
