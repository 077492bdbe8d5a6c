"""Written-out guided ReLU references (independent of convscope's hooks) for engine and algorithm tests."""

from __future__ import annotations

import torch


class GuidedReLU(torch.autograd.Function):
    """Reference guided ReLU, written out: backward is ``relu(g) * (x > 0)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * (x > 0)


class GuidedReLU6(torch.autograd.Function):
    """Reference guided ReLU6: backward is ``relu(g) * (0 < x < 6)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(0, 6)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * ((x > 0) & (x < 6))
