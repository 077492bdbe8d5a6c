"""Algorithm plugins: one file per algorithm, one registry.

``register`` adds an :class:`Algorithm` subclass; the engine, the CLI's ``--algorithms`` choices
and the UI menu are all generated from :func:`names` / :func:`all`.
"""

from convscope.algorithms import (  # noqa: F401
    gradcam,
    gradcam_pp,
    guided_backprop,
    guided_gradcam,
    saliency,
)
from convscope.algorithms import (  # noqa: F401  (issue 13's zoo, in the issue's order)
    hirescam,
    gradcam_elementwise,
    xgradcam,
    layercam,
    eigencam,
    eigengradcam,
    input_x_gradient,
    deconvnet,
)
from convscope.algorithms.base import INPUT, Algorithm, Captured, Grad, Needs
from convscope.algorithms.registry import all, get, names, register, unregister

__all__ = ["INPUT", "Algorithm", "Captured", "Grad", "Needs", "all", "get", "names", "register", "unregister"]
