"""Per-request algorithm options (issue 13): smoothing, steps, samples, seeds, channel counts.

A request carries them as ``ViewRequest.options`` (a tuple of ``(name, value)`` pairs, so the
request stays hashable); the engine makes them current around planning and computing
(:func:`active`), and an algorithm reads :func:`current` in ``needs`` and ``compute``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from convscope.errors import RequestError


@dataclass(frozen=True)
class Options:
    """Algorithm options.

    Attributes:
        aug_smooth: every CAM averages its (min-max scaled, input-size) map over the horizontal
            flip and intensity factors 0.9, 1, 1.1 of the input: 6 extra rows (pytorch-grad-cam's
            ``aug_smooth``).
        eigen_smooth: every CAM takes the first principal component of its weighted activations
            instead of their sum (pytorch-grad-cam's ``eigen_smooth``).
        steps: Integrated Gradients' steps (rows).
        baseline: Integrated Gradients' baseline: ``black`` (a black image) or ``blur`` (the
            frame blurred, Gaussian sigma ``blur_sigma`` pixels).
        blur_sigma: the blurred baseline's sigma in pixels.
        samples: SmoothGrad's noisy rows.
        noise: SmoothGrad's noise level: sigma as a share of the input's range (the paper's 10-20%).
        seed: the seed of every random draw (SmoothGrad's noise): the same seed, the same maps.
        top_channels: Score-CAM and Ablation-CAM use the K channels of largest mean activation
            (``None``: every channel of the layer).
    """

    aug_smooth: bool = False
    eigen_smooth: bool = False
    steps: int = 16
    baseline: str = "black"
    blur_sigma: float = 8.0
    samples: int = 16
    noise: float = 0.15
    seed: int = 0
    top_channels: int | None = 32

    @classmethod
    def of(cls, pairs: tuple[tuple[str, object], ...] | dict | None) -> Options:
        """Options from ``(name, value)`` pairs (unknown names are a one-line error)."""
        items = dict(pairs or ())
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(items) - names)
        if unknown:
            raise RequestError(f"unknown algorithm option(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
        opts = cls(**items)
        if opts.baseline not in ("black", "blur"):
            raise RequestError(f"baseline must be black or blur, got {opts.baseline!r}")
        for name in ("steps", "samples"):
            if int(getattr(opts, name)) < 1:
                raise RequestError(f"{name} must be at least 1")
        if opts.top_channels is not None and opts.top_channels < 1:
            raise RequestError("top_channels must be at least 1 (or None for every channel)")
        return opts

    def pairs(self) -> tuple[tuple[str, object], ...]:
        """The options that differ from the defaults, as ``ViewRequest.options`` wants them."""
        default = Options()
        return tuple(
            (f.name, getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )


_CURRENT: ContextVar[Options] = ContextVar("convscope_algorithm_options", default=Options())  # noqa: B039 (frozen)


def current() -> Options:
    """The options of the request being planned or computed."""
    return _CURRENT.get()


@contextlib.contextmanager
def active(pairs: tuple[tuple[str, object], ...] | Options | None) -> Iterator[Options]:
    """Make ``pairs`` the current options inside the block."""
    opts = pairs if isinstance(pairs, Options) else Options.of(pairs)
    token = _CURRENT.set(opts)
    try:
        yield opts
    finally:
        _CURRENT.reset(token)
