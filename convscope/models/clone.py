"""A private copy of a user's model, without the hooks an engine (or the user) attached to it.

The dashboard copies its model while the frame loop runs it: the background lane
(:mod:`convscope.server.lanes`) and the sanity check (:mod:`convscope.server.trust`) each run
their own engine on a copy. A plain ``copy.deepcopy`` would copy the live engine's capture and
backward-rule hooks too, and with them the engine they are bound to: the copy's forwards would
write into the frame loop's captures.
"""

from __future__ import annotations

import copy

from torch import nn


def clean_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with empty hook tables.

    Each hook table is swapped for an empty one through deepcopy's memo, so the live module is
    never touched (nothing is removed from it, even for a moment).
    """
    memo: dict[int, object] = {}
    for m in module.modules():
        for key, value in vars(m).items():
            if "hooks" in key and isinstance(value, dict):
                memo[id(value)] = type(value)()
    return copy.deepcopy(module, memo)
