"""Algorithm plugins: one file per algorithm, one registry.

Every module in this folder is imported (:func:`convscope.plugins.import_folder`), and each one
registers its :class:`Algorithm` subclass with ``@register``; the engine, the CLI's
``--algorithms`` choices and the UI menu are all generated from :func:`names` / :func:`all`, in
the algorithms' ``order``. Adding an algorithm is adding a file here: see docs/engine.md.
"""

from convscope.algorithms.base import Algorithm, Captured, RowCaptured
from convscope.algorithms.registry import all, get, names, register, unregister
from convscope.plugins import import_folder

#: Modules of this folder that are infrastructure, not algorithms.
INFRASTRUCTURE = ("base", "registry", "options")

#: The algorithm modules found in this folder, in import order.
MODULES = import_folder(__name__, __path__, INFRASTRUCTURE)

__all__ = ["MODULES", "Algorithm", "Captured", "RowCaptured", "all", "get", "names", "register", "unregister"]
