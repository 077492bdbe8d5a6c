"""Forward hooks that keep the outputs of the layers a frame needs.

Hooks are installed lazily, once per layer per engine, and stay until :meth:`LayerCapture.close`;
per frame only the set of wanted layers changes. A hook stores the layer's output and hands the
rest of the network a clone, so in-place operations downstream (``ReLU(inplace=True)`` right
after a conv, as in VGG) cannot overwrite the stored activation or the autograd node its
gradient is taken at. When a layer's gradient is needed but nothing upstream requires grad (a
Grad-CAM-only frame), its output becomes the leaf the graph starts from, so only the network's
tail is recorded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class LayerCapture:
    """Captures the first output of each wanted layer during one forward."""

    def __init__(self, module: nn.Module) -> None:
        self._modules = dict(module.named_modules())
        self._handles: dict[str, RemovableHandle] = {}
        self.wanted: dict[str, bool] = {}  # layer name -> needs a gradient
        self.outputs: dict[str, torch.Tensor] = {}

    def begin(self, wanted: dict[str, bool]) -> None:
        """Arm the hooks of ``wanted`` layers (installing missing ones) for the next forward."""
        for name in wanted:
            if name not in self._handles:
                self._handles[name] = self._modules[name].register_forward_hook(self._hook_for(name))
        self.wanted = wanted
        self.outputs = {}

    def end(self) -> None:
        """Drop references to this frame's tensors (and so to its graph)."""
        self.wanted = {}
        self.outputs = {}

    def _hook_for(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> torch.Tensor | None:
            grad = self.wanted.get(name)
            if grad is None or name in self.outputs or not isinstance(output, torch.Tensor):
                return None
            if grad and torch.is_grad_enabled() and not output.requires_grad:
                output = output.detach().requires_grad_()
            self.outputs[name] = output
            return output.clone()

        return hook

    def close(self) -> None:
        """Remove every hook this capture installed."""
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()
        self.end()
