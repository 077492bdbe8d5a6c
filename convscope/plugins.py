"""Plugin discovery: every module in a plugin folder is imported, so a new file is a new plugin.

Algorithms (:mod:`convscope.algorithms`) and views (:mod:`convscope.views`) register themselves
with a class decorator when their module is imported. Importing the folder rather than a
hand-kept list means adding a plugin is one file and nothing else; a test checks that every
module in each folder registered something, so a file whose decorator was forgotten fails it.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def import_folder(package: str, path: list[str], infrastructure: tuple[str, ...]) -> tuple[ModuleType, ...]:
    """Import every module of ``package`` (at ``path``) except ``infrastructure``, in name order.

    Name order keeps registration (and so menus and ``--help``) stable from run to run.
    """
    modules = []
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in infrastructure:
            continue
        modules.append(importlib.import_module(f"{package}.{info.name}"))
    return tuple(modules)
