"""View plugins: one file per panel a frame can show, one registry.

Every module in this folder is imported (:func:`convscope.plugins.import_folder`); each panel
view registers itself with ``@register``. Algorithms' maps are shown by
:class:`~convscope.views.maps.MapView`, one per algorithm. See :mod:`convscope.views.base` for
what a view is and docs/engine.md for a worked example of adding one.
"""

from convscope.plugins import import_folder
from convscope.views.base import Blob, Frame, HostFrame, Panel, PanelKind, Slot, View
from convscope.views.registry import (
    all,
    defaults,
    for_request,
    for_stills,
    get,
    map_view,
    names,
    register,
    unregister,
)
from convscope.views.result import Result

#: Modules of this folder that are infrastructure (or the map view, made per algorithm), not panel views.
INFRASTRUCTURE = ("base", "registry", "result", "maps")

#: The view modules found in this folder, in import order.
MODULES = import_folder(__name__, __path__, INFRASTRUCTURE)

__all__ = [
    "MODULES", "Blob", "Frame", "HostFrame", "Panel", "PanelKind", "Result", "Slot", "View", "all", "defaults",
    "for_request", "for_stills", "get", "map_view", "names", "register", "unregister",
]
