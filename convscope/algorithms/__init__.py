"""Algorithm plugins: one file per algorithm, one registry.

``register`` adds an :class:`Algorithm` subclass; the engine, the CLI's ``--algorithms`` choices
and the UI menu are all generated from :func:`names` / :func:`all`.
"""

import importlib

from convscope.algorithms.base import INPUT, Algorithm, Captured, Grad, Needs, Rows
from convscope.algorithms.registry import all, get, names, register, unregister

#: the plugin modules, imported (so registered) in this order: the order of the menus and --help
MODULES = (
    "gradcam",
    "gradcam_pp",
    "guided_backprop",
    "guided_gradcam",
    "saliency",
    # issue 13's zoo, in the issue's order
    "hirescam",
    "gradcam_elementwise",
    "xgradcam",
    "layercam",
    "eigencam",
    "eigengradcam",
    "scorecam",
    "ablationcam",
    "integrated_gradients",
    "smoothgrad",
    "smoothgrad_sq",
    "input_x_gradient",
    "deconvnet",
)
for _module in MODULES:
    importlib.import_module(f"convscope.algorithms.{_module}")

__all__ = ["INPUT", "Algorithm", "Captured", "Grad", "Needs", "Rows", "all", "get", "names", "register", "unregister"]
