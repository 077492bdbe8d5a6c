"""One device-to-host copy per frame: every result packed into one flat uint8 buffer.

Images are uint8 already; floats and indices are reinterpreted as bytes (``Tensor.view``), so
nothing is converted or synchronised before the single copy. Pieces are laid out widest dtype
first, so every numpy view on the host is aligned.
"""

from __future__ import annotations

import numpy as np
import torch

_NUMPY = {torch.uint8: np.uint8, torch.float32: np.float32, torch.int64: np.int64, torch.int32: np.int32}


class Packer:
    """Collect named device tensors, copy them to the host at once, split into numpy views."""

    def __init__(self) -> None:
        self._items: list[tuple[object, torch.Tensor]] = []

    def add(self, key: object, tensor: torch.Tensor) -> None:
        """Queue ``tensor`` under ``key`` (a string, or ``(owner, key)`` from a :class:`Slot`)."""
        if tensor.dtype not in _NUMPY:
            tensor = tensor.float()
        self._items.append((key, tensor))

    def __len__(self) -> int:
        return len(self._items)

    def slot(self, owner: str) -> Slot:
        """The part of the buffer that belongs to ``owner`` (a view name); see :meth:`split`."""
        return Slot(self, owner)

    def copy(self) -> dict:
        """Pack, copy to the host once and return ``key -> numpy array`` (views of one buffer)."""
        if not self._items:
            return {}
        items = sorted(self._items, key=lambda kv: -kv[1].element_size())
        flat = [_bytes(t) for _, t in items]
        host = torch.cat(flat).cpu().numpy()
        out: dict = {}
        offset = 0
        for (key, t), raw in zip(items, flat, strict=True):
            n = raw.numel()
            out[key] = host[offset : offset + n].view(_NUMPY[t.dtype]).reshape(tuple(t.shape))
            offset += n
        return out


class Slot:
    """One owner's keys in a :class:`Packer` (``convscope.views.base.Slot``)."""

    def __init__(self, packer: Packer, owner: str) -> None:
        self._packer, self.owner = packer, owner
        self.kept: dict[str, object] = {}

    def add(self, key: str, tensor: torch.Tensor) -> None:
        self._packer.add((self.owner, key), tensor)

    def keep(self, key: str, value: object) -> None:
        self.kept[key] = value


def split(host: dict, slots: list[Slot]) -> dict[str, dict[str, object]]:
    """``owner -> {key: host array or kept value}`` from what :meth:`Packer.copy` returned."""
    out: dict[str, dict[str, object]] = {s.owner: dict(s.kept) for s in slots}
    for key, array in host.items():
        if isinstance(key, tuple):
            out.setdefault(key[0], {})[key[1]] = array
    return out


def _bytes(t: torch.Tensor) -> torch.Tensor:
    flat = t.detach().reshape(-1)
    if flat.numel() and flat.stride(0) != 1:  # a 1-element slice can keep its parent's stride
        flat = flat.new_empty(flat.shape).copy_(flat)
    return flat.view(torch.uint8)
