"""The built-in demo: a slow pan and zoom across photos that scikit-image ships.

Needs no camera and no network, and moves between very different subjects (a cat, a coffee cup,
an astronaut, a rocket) so a classifier's answer visibly changes. The photos are scaled once so
that the most zoomed-in view is 1:1; each frame is then an integer crop and one small bilinear
downscale (about a millisecond with OpenCV), leaving the CPU to the model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from convscope.errors import SourceError
from convscope.sources.decoder import RawFrame, as_rgb

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
WIDTH, HEIGHT = 640, 480
FPS = 30.0
HOLD_SECONDS = 4.0  # pan and zoom over one photo
FADE_SECONDS = 0.5  # the last part of the hold cross-fades into the next photo
ZOOM = 1.3  # the view narrows to 1/ZOOM of its widest and back


@functools.lru_cache(maxsize=1)
def demo_photos() -> tuple[np.ndarray, ...]:
    """The demo photos, RGB uint8, scaled so the widest 4:3 view is ``ZOOM`` x the output size."""
    try:
        import skimage.data
    except ImportError:
        raise SourceError("the demo source needs scikit-image: pip install scikit-image") from None
    photos = []
    for name in PHOTOS:
        im = Image.fromarray(np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]), "RGB")
        pw, ph = im.size
        scale = ZOOM * WIDTH / min(pw, ph * WIDTH / HEIGHT)
        im = im.resize((round(pw * scale), round(ph * scale)), Image.Resampling.LANCZOS)
        photos.append(np.ascontiguousarray(np.asarray(im)))
    return tuple(photos)


def _resizer() -> Callable[[np.ndarray], np.ndarray]:
    """Bilinear resize to the demo size: OpenCV when installed (5x faster), else Pillow."""
    try:
        import cv2
    except ImportError:
        return lambda a: np.asarray(Image.fromarray(a).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR))
    return lambda a: cv2.resize(a, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def view(photo: np.ndarray, t: float, direction: int, resize: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The 4:3 view of ``photo`` at phase ``t`` in [0, 1], at the demo size.

    The view starts wide, narrows by :data:`ZOOM` at mid-phase and widens again, while its
    centre glides from one side of the photo to the other (``direction`` picks the side).
    """
    ph, pw = photo.shape[:2]
    ease = 0.5 - 0.5 * math.cos(math.pi * t)  # 0 -> 1, gentle at both ends
    zoom = 1.0 + (ZOOM - 1.0) * math.sin(math.pi * t)
    cw = min(pw, round(WIDTH * ZOOM / zoom))
    ch = min(ph, round(cw * HEIGHT / WIDTH))
    u = ease if direction > 0 else 1.0 - ease
    x0 = round((pw - cw) * u)
    y0 = round((ph - ch) * (0.3 + 0.4 * ease))
    return resize(photo[y0 : y0 + ch, x0 : x0 + cw])


def blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * a + weight * b`` in integer arithmetic."""
    w = int(round(weight * 256))
    return ((a.astype(np.uint16) * (256 - w) + b.astype(np.uint16) * w) >> 8).astype(np.uint8)


class DemoDecoder:
    """One tour across all demo photos at :data:`FPS` (the source loop repeats it)."""

    live = False
    fps = FPS

    def __init__(self) -> None:
        self._photos = demo_photos()
        self._resize = _resizer()

    def frames(self) -> Iterator[RawFrame]:
        hold = round(HOLD_SECONDS * FPS)
        fade = round(FADE_SECONDS * FPS)
        n = len(self._photos)
        for k, photo in enumerate(self._photos):
            following = None
            for i in range(hold):
                image = view(photo, i / hold, 1 if k % 2 == 0 else -1, self._resize)
                into = i - (hold - fade)
                if into >= 0 and n > 1:  # cross-fade towards the next photo's first view
                    if following is None:
                        following = view(self._photos[(k + 1) % n], 0.0, 1 if (k + 1) % 2 == 0 else -1, self._resize)
                    image = blend(image, following, (into + 1) / (fade + 1))
                yield RawFrame(as_rgb(image), (k * hold + i) / FPS)

    def close(self) -> None:
        pass
