"""Video in, video out: maps of a video's frames written as a video (PyAV), at the input's frame rate.

``.mp4`` is H.264 (``libx264``, else MPEG-4 part 2), ``.webm`` VP9 (else VP8), ``.gif`` a GIF;
H.264 and VP9 use yuv420p, so an odd width or height is padded by one repeated edge pixel.
With ``--every N`` the output runs at the input's rate divided by N, so it lasts as long as the input.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from convscope.errors import OutputError

#: Output suffixes that make a video input write a video instead of frame files.
VIDEO_OUTPUTS = (".mp4", ".webm", ".gif")

_CODECS = {".mp4": ("libx264", "h264", "mpeg4"), ".webm": ("libvpx-vp9", "libvpx"), ".gif": ("gif",)}


def is_video_output(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_OUTPUTS


def frame_rate(path: str | Path) -> Fraction:
    """The video's average frame rate (25 when the container does not say)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except Exception:  # the frames themselves decoded; only the rate is unknown
        rate = None
    return Fraction(rate) if rate else Fraction(25)


class VideoWriter:
    """Encode RGB uint8 frames into ``path``; the stream is set up from the first frame's size."""

    def __init__(self, path: str | Path, rate: Fraction):
        import av  # imported lazily: PyAV costs time to import

        self.path = Path(path)
        self.rate = Fraction(rate).limit_denominator(100000)
        self.frames = 0
        suffix = self.path.suffix.lower()
        if suffix not in _CODECS:
            raise OutputError(f"cannot write video as {suffix}: use {', '.join(VIDEO_OUTPUTS)}")
        codec = next((c for c in _CODECS[suffix] if c in av.codecs_available), None)
        if codec is None:
            raise OutputError(f"cannot write {suffix}: this PyAV build has none of {', '.join(_CODECS[suffix])}")
        self.codec = codec
        try:
            self.container = av.open(str(self.path), "w")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.stream = None
        self.size: tuple[int, int] | None = None

    def _open_stream(self, h: int, w: int) -> None:
        rgb = self.codec == "gif"
        self.size = (h, w) if rgb else (h + h % 2, w + w % 2)
        self.stream = self.container.add_stream(self.codec, rate=self.rate)
        self.stream.height, self.stream.width = self.size
        self.stream.pix_fmt = "rgb8" if rgb else "yuv420p"
        if self.codec == "libx264":
            self.stream.options = {"crf": "18", "preset": "veryfast"}

    def write(self, image: np.ndarray) -> None:
        """Append one RGB uint8 HxWx3 frame (every frame the size of the first)."""
        import av

        h, w = image.shape[:2]
        if self.stream is None:
            self._open_stream(h, w)
        assert self.size is not None
        if (h, w) != self.size:
            image = np.pad(image, ((0, self.size[0] - h), (0, self.size[1] - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            if self.stream is not None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()
