"""``convscope record``: render every frame of a video file (or folder) to an MP4 or a GIF.

One output frame per input frame, at the input's frame rate, with the chosen panels tiled side by
side (``--panels input,gradcam,guided-backprop``): what a README animation, a talk or a bug
report needs, without a browser. Frames are decoded in order, computed by the same engine as the
dashboard, and encoded by PyAV: H.264 (yuv420p, even sizes) for ``.mp4``, FFmpeg's GIF encoder
for ``.gif``. A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from convscope.cli.common import add_command, add_model_options, load_model_from_args
from convscope.errors import UsageError, suggest

FORMATS = {".mp4": "libx264", ".gif": "gif"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "record", "render every frame of a video or folder to an MP4 or GIF",
        description="Render every input frame of a video file (or folder of images) with the chosen "
        "panels tiled side by side: one output frame per input frame at the input's frame rate. "
        "MP4 (H.264) or GIF by the output's suffix.",
    )
    p.add_argument("-s", "--source", required=True, metavar="S", help="a video file, or a folder of images")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="out.mp4 or out.gif")
    p.add_argument("--panels", default="input,gradcam,guided-backprop", metavar="P,Q,...",
                   help="panels, left to right: input, activations, channel, fc and any algorithm "
                   "(gradcam, guided-backprop, ...; default: input,gradcam,guided-backprop)")
    p.add_argument("--layer", metavar="NAME", help="the CAM layer (default: the layer that feeds the head)")
    p.add_argument("--grid-layer", metavar="NAME", help="the activation grid's layer (default: as the dashboard)")
    p.add_argument("--class", dest="class_index", type=int, metavar="C",
                   help="explain this class in every frame (default: each frame's top-1)")
    p.add_argument("--size", type=int, default=224, metavar="PX", help="height of each panel in pixels (default: 224)")
    p.add_argument("--fps", type=float, metavar="F", help="output frame rate (default: the input's; 1 for folders)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    add_model_options(p)
    p.set_defaults(func=run)


def parse_panels(text: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """Panel names, validated against ``known`` (the views that draw a picture and the algorithm
    registry's names; ``-`` = ``_``)."""
    names = tuple(dict.fromkeys(n.strip().replace("-", "_") for n in text.split(",") if n.strip()))
    if not names:
        raise UsageError("record: --panels is empty; choose from " + ", ".join(known))
    for name in names:
        if name not in known:
            raise UsageError(f"record: unknown panel {name!r}{suggest(name, known)}; known: {', '.join(known)}")
    return names


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    if (h, w) == (height, width):
        return image
    resample = Image.NEAREST if h < height / 2 else Image.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), resample))


def panel_images(result, panels: tuple[str, ...]) -> list[np.ndarray]:
    """The images of ``panels`` from an engine ``Result`` (CAM-like maps as their overlay)."""
    out = []
    for name in panels:
        panel = result.panels.get(name) or result.panels[f"map:{name}"]  # a view, or an algorithm's map
        out.append(next(iter(panel.images().values())))
    return out


def compose(images: list[np.ndarray], height: int, even: bool) -> np.ndarray:
    """Tile ``images`` left to right at ``height`` px with a 4 px gap; even sizes for H.264."""
    gap = 4
    tiles = [_fit(im, height) for im in images]
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    h = height
    if even:
        width += width % 2
        h += h % 2
    canvas = np.full((h, width, 3), 16, np.uint8)
    x = 0
    for t in tiles:
        canvas[: t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return canvas


class Writer:
    """PyAV encoder for ``.mp4`` (H.264) or ``.gif``; frames are RGB uint8 of one size."""

    def __init__(self, path: Path, fps: float, *, fast_palette: bool = False) -> None:
        """``fast_palette``: GIF palettes by PIL's fast octree (about 15 ms for a 1000x450 frame)
        instead of median cut (about 1.5 s): the dashboard's recorder, which keeps pace with it."""
        import av

        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            raise UsageError(f"record: the output must end in .mp4 or .gif, got {path.name!r}")
        self.path = path
        self.gif = suffix == ".gif"
        self.rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        try:
            self.container = av.open(str(path), "w")
        except (OSError, av.error.FFmpegError) as exc:
            raise UsageError(f"record: cannot write {path}: {exc}") from None
        self.stream = None
        self.frames = 0
        self.bytes = 0  # encoded bytes so far (the file on disk lags behind by the muxer's buffer)
        self.fast_palette = fast_palette
        self._last: tuple[np.ndarray, object] | None = None  # (image, its frame): a repeated picture is converted once

    def add(self, image: np.ndarray) -> None:
        import av

        if self.stream is None:
            h, w = image.shape[:2]
            self.stream = self.container.add_stream(FORMATS[".gif" if self.gif else ".mp4"], rate=self.rate)
            self.stream.width, self.stream.height = w, h
            if self.gif:
                self.stream.pix_fmt = "pal8"  # an adaptive palette per frame (see _palette_frame)
            else:
                self.stream.pix_fmt = "yuv420p"
                self.stream.options = {"crf": "20", "preset": "veryfast"}
        if self._last is not None and self._last[0] is image:
            frame = self._last[1]
        elif self.gif:
            frame = _palette_frame(image, fast=self.fast_palette)
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        self._last = (image, frame)
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        for packet in self.stream.encode(frame):
            self.bytes += packet.size
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        self.container.close()


def _palette_frame(image: np.ndarray, fast: bool = False):
    """A ``pal8`` frame with the image's own 256-colour palette (median cut): GIF's fixed 3-3-2
    palette bands heatmaps. PyAV takes the palette as 256 rows of bytes (A, R, G, B)."""
    import av
    from PIL import Image

    method = Image.Quantize.FASTOCTREE if fast else Image.Quantize.MEDIANCUT
    q = Image.fromarray(np.ascontiguousarray(image)).quantize(256, method=method)
    rgb = np.array(q.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    palette[: len(rgb), 1:] = rgb
    return av.VideoFrame.from_ndarray((np.ascontiguousarray(np.asarray(q, np.uint8)), palette), format="pal8")


class Progress:
    """``record: [#####-----] 12/100 frames  3.4 fps`` on stderr (a line every 10% when not a tty)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_tenth = -1

    def update(self, done: int) -> None:
        elapsed = max(1e-6, time.monotonic() - self.start)
        fraction = done / self.total if self.total else 1.0
        bar = "#" * int(20 * fraction) + "-" * (20 - int(20 * fraction))
        line = f"record: [{bar}] {done}/{self.total} frames  {done / elapsed:.1f} fps"
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif int(10 * fraction) != self.last_tenth:
            self.last_tenth = int(10 * fraction)
            print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from convscope import algorithms, views
    from convscope.engine import Engine, Target, ViewRequest
    from convscope.server.protocol import ModelSpace, ViewState
    from convscope.sources.playback import ImageFrames, VideoFrames
    from convscope.sources.spec import parse_spec
    from convscope.stills.options import check_class

    pictures = tuple(v.name for v in views.all() if v.kind != "bars")  # every view but the top-k list
    panels = parse_panels(args.panels, pictures + tuple(algorithms.names()))
    out = Path(args.output)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"record: the output must end in .mp4 or .gif, got {out.name!r}")
    if args.size < 16 or args.size > 2048:
        raise UsageError(f"record: --size must be between 16 and 2048, got {args.size}")
    parsed = parse_spec(args.source)
    if parsed.kind not in ("file", "folder"):
        raise UsageError(f"record: --source must be a video file or a folder of images, got {parsed.kind} "
                         f"{parsed.display}")
    frames = VideoFrames(parsed.target, parsed.display) if parsed.kind == "file" else ImageFrames(parsed.target, parsed.display)
    engine = None
    writer = None
    try:
        bundle = load_model_from_args(args)
        check_class(bundle, args.class_index)
        engine = Engine(bundle)
        space = ModelSpace.from_layers(engine.layers, engine.num_classes, tuple(algorithms.names()))
        initial = ViewState.initial(space)
        algos = tuple(a for a in algorithms.names() if a in panels)
        request = ViewRequest(
            conv_layer=args.grid_layer or initial.conv_layer, cam_layer=args.layer or initial.cam_layer,
            cam_target=Target("class", args.class_index), selection_target=Target("class", args.class_index),
            algorithms=algos, panels=tuple(p for p in views.names() if p in panels)
            + ("input", "predictions"),
        )
        engine.resolve(request)
        total = len(frames) if args.max_frames is None else min(len(frames), max(1, args.max_frames))
        fps = args.fps or (frames.fps if parsed.kind == "file" else 1.0)
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(out, fps)
        progress = Progress(total)
        for i in range(total):
            result = engine.run(frames.get(i), request)
            writer.add(compose(panel_images(result, panels), args.size, even=not writer.gif))
            progress.update(i + 1)
        progress.finish()
    finally:
        if writer is not None:
            writer.close()
        if engine is not None:
            engine.close()
        frames.close()
    print(f"convscope: wrote {out} ({writer.frames} frames, {float(writer.rate):g} fps, "
          f"panels {', '.join(panels)})", flush=True)
    return 0
