"""Feature visualisation: an image optimised to excite one channel, regularised as lucid/lucent do.

Olah et al., "Feature Visualization" (Distill 2017), and lucid's / lucent's defaults, written out:

* **Parametrisation**: the image is the inverse real FFT of a learned spectrum whose frequency ``f``
  is scaled by ``1 / max(f, 1 / max(h, w))`` (decay power 1), divided by 4; its three channels are
  **decorrelated colours**, mapped to RGB by the square root of ImageNet's colour correlation
  (lucid's ``color_correlation_svd_sqrt``, normalised by its largest column norm), then a sigmoid.
* **Transformation robustness**, a new draw per step: pad 12 px (grey), jitter 8 px, scale by one
  of ``1 + (i - 5) / 50``, rotate by one of -10..10 degrees, jitter 4 px.
* **Objective**: the channel's mean over its map (lucid's ``channel``), maximised with Adam (lr 0.05).

The forward stops at the layer (a hook raises), so only the network's head up to it runs. A run is
cancellable (``cancel``: an Event or a callable returning True), reports progress, and its result
is cached per (model, layer, channel, steps, size, seed), in memory and optionally on disk.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convscope.errors import ConvscopeError
from convscope.models.bundle import ModelBundle
from convscope.models.layers import LayerInfo

COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class Cancelled(ConvscopeError):
    """The visualisation was cancelled before it finished."""


class _Stop(Exception):
    pass


def fft_param(h: int, w: int, generator: torch.Generator, sd: float = 0.01) -> torch.Tensor:
    """The learned spectrum: ``3 x h x (w // 2 + 1) x 2`` (real, imaginary), small random values."""
    return torch.randn(3, h, w // 2 + 1, 2, generator=generator) * sd


def spectrum_scale(h: int, w: int, decay: float = 1.0) -> torch.Tensor:
    """``1 / max(f, 1 / max(h, w)) ** decay`` for every rfft2 frequency ``f`` (cycles per pixel)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay


def to_rgb(spectrum: torch.Tensor, scale: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Spectrum -> ``1 x 3 x h x w`` image in (0, 1): inverse FFT, colour decorrelation, sigmoid."""
    complex_spec = torch.view_as_complex(spectrum.contiguous()) * scale
    image = torch.fft.irfft2(complex_spec, s=(h, w), norm="ortho") / 4.0
    corr = COLOR_CORRELATION_SVD_SQRT.to(image.device)
    corr = corr / corr.norm(dim=0).max()
    image = torch.einsum("chw,dc->dhw", image, corr)
    return torch.sigmoid(image)[None]


def _transform(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """lucid's standard transforms: pad 12, jitter 8, random scale, random rotation, jitter 4."""
    x = F.pad(x, (12, 12, 12, 12), mode="constant", value=0.5)
    x = _jitter(x, 8, rng)
    s = 1 + (int(rng.integers(0, 11)) - 5) / 50
    angle = math.radians(int(rng.integers(-10, 11)))
    cos, sin = math.cos(angle) / s, math.sin(angle) / s
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)[None]
    h, w = x.shape[-2:]
    size = (1, 3, max(1, round(h * s)), max(1, round(w * s)))
    grid = F.affine_grid(theta, list(size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return _jitter(x, 4, rng)


def _jitter(x: torch.Tensor, d: int, rng: np.random.Generator) -> torch.Tensor:
    dy, dx = (int(v) for v in rng.integers(0, d, size=2))
    h, w = x.shape[-2:]
    return x[..., dy: h - d + dy, dx: w - d + dx]


class FeatureVis:
    """Feature visualisations of one model's units, cached.

    Args:
        bundle: the model (its module is run as it is; parameters get no gradient).
        cache_dir: where finished images are kept as PNG between runs (None: memory only).
    """

    def __init__(self, bundle: ModelBundle, cache_dir: str | Path | None = None) -> None:
        self.bundle = bundle
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def key(self, layer: str, channel: int, steps: int, size: int, seed: int) -> str:
        text = f"{self.bundle.name}|{layer}|{channel}|{steps}|{size}|{seed}"
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    def cached(self, layer: str, channel: int, steps: int = 128, size: int = 128, seed: int = 0) -> np.ndarray | None:
        key = self.key(layer, channel, steps, size, seed)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        if self.cache_dir is not None and (self.cache_dir / f"{key}.png").exists():
            img = np.asarray(Image.open(self.cache_dir / f"{key}.png").convert("RGB"))
            with self._lock:
                self._memory[key] = img
            return img
        return None

    def render(self, layer: LayerInfo, channel: int, *, steps: int = 128, size: int = 128, seed: int = 0,
               lr: float = 0.05, progress: Callable[[int, int], None] | None = None,
               cancel: threading.Event | Callable[[], bool] | None = None) -> np.ndarray:
        """An RGB uint8 ``size x size`` image that excites ``channel`` of ``layer`` (cached).

        Raises:
            Cancelled: ``cancel`` was set before the last step.
        """
        hit = self.cached(layer.name, channel, steps, size, seed)
        if hit is not None:
            if progress is not None:
                progress(steps, steps)
            return hit
        image = optimise(self.bundle, layer, channel, steps=steps, size=size, seed=seed, lr=lr,
                         progress=progress, cancel=cancel)
        img = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        key = self.key(layer.name, channel, steps, size, seed)
        with self._lock:
            self._memory[key] = img
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f"{key}.tmp.png"
            Image.fromarray(img).save(tmp)
            tmp.replace(self.cache_dir / f"{key}.png")
        return img


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def channel_activation(bundle: ModelBundle, layer: LayerInfo, channel: int, images01: torch.Tensor) -> torch.Tensor:
    """The channel's mean over its map for ``N x 3 x h x w`` images in [0, 1] (the objective)."""
    prep = bundle.preprocessing
    mean = torch.tensor(prep.mean, device=images01.device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=images01.device).view(1, 3, 1, 1)
    module = bundle.module
    target = dict(module.named_modules())[layer.name]
    got: list[torch.Tensor] = []

    def hook(_m, _i, out):
        got.append(out)
        raise _Stop

    handle = target.register_forward_hook(hook)
    try:
        try:
            module((images01 - mean) / std)
        except _Stop:
            pass
    finally:
        handle.remove()
    return layer.as_map(got[0])[:, channel].mean(dim=(1, 2))


def optimise(bundle: ModelBundle, layer: LayerInfo, channel: int, *, steps: int = 128, size: int = 128,
             seed: int = 0, lr: float = 0.05, progress: Callable[[int, int], None] | None = None,
             cancel: threading.Event | Callable[[], bool] | None = None) -> torch.Tensor:
    """Optimise and return the ``1 x 3 x size x size`` image in [0, 1] (no cache)."""
    dev = bundle.device
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    spectrum = fft_param(size, size, gen).to(dev).requires_grad_()
    scale = spectrum_scale(size, size).to(dev)[..., None].expand(size, size // 2 + 1, 1).squeeze(-1)
    opt = torch.optim.Adam([spectrum], lr=lr)
    module = bundle.module
    was_training = module.training
    module.eval()
    sd = 0.01
    try:
        for step in range(steps):
            if _cancelled(cancel):
                raise Cancelled(f"feature visualisation of {layer.name}:{channel} cancelled at step {step}")
            with torch.enable_grad():
                image = to_rgb(spectrum, scale, size, size)
                loss = -channel_activation(bundle, layer, channel, _transform(image, rng)).sum()
                (grad,) = torch.autograd.grad(loss, spectrum)
            if sd < 2.0 and not bool(grad.any()):
                # A unit behind a ReLU that the near-grey start leaves at zero everywhere has no
                # gradient at all: start again from louder noise (x4 each time) until it responds.
                sd *= 4
                with torch.no_grad():
                    spectrum.copy_(fft_param(size, size, gen, sd).to(dev))
                opt = torch.optim.Adam([spectrum], lr=lr)
                if progress is not None:
                    progress(step + 1, steps)
                continue
            opt.zero_grad(set_to_none=True)
            spectrum.grad = grad
            opt.step()
            if progress is not None:
                progress(step + 1, steps)
    finally:
        module.train(was_training)
    with torch.no_grad():
        return to_rgb(spectrum, scale, size, size).detach()
