"""Still outputs at the input's own geometry, with an optional caption and colour bar.

The engine returns each map raw (``ViewRequest(keep_raw=True)``) at the model's resolution; this
module draws it over the original frame, at the frame's width, height and aspect ratio, with the
same on-device helpers the engine renders with (:mod:`convscope.render`), so
``--size model`` reproduces the engine's own 224x224 pictures exactly.

Colormaps follow the kind of map (``--colormap auto``): Grad-CAM-like heatmaps in ``jet`` (the
convention of the Grad-CAM papers and pytorch-grad-cam), magnitudes such as saliency in the
sequential ``inferno``, and signed attributions drawn with ``--gradients signed`` in the
diverging ``RdBu_r`` (white at zero). Guided backprop's default picture stays the usual RGB
rendering of the gradient around mid-grey.

With the ``center_crop`` preprocessing the model sees only a centre crop: the map is drawn over
that part of the frame, the rest of the overlay is the frame itself (black in the bare map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from convscope import render
from convscope.models.bundle import Preprocessing
from convscope.models.preprocess import geometry
from convscope.render.colormaps import lut
from convscope.views.maps import MapOutput

Size = Literal["input", "model"]
GradientStyle = Literal["rgb", "signed"]

#: ``--colormap auto``: the colormap of each kind of map.
AUTO = {"heatmap": "jet", "magnitude": "inferno", "signed": "RdBu_r"}


@dataclass(frozen=True)
class Style:
    """How still outputs look.

    Attributes:
        size: ``input`` (the frame's own resolution and aspect ratio) or ``model`` (the network's
            input, e.g. 224x224, as before).
        colormap: a colormap name, or ``auto`` for one per kind of map (:data:`AUTO`).
        annotate: add a caption (class, probability, method, layer) and a colour bar.
        gradients: input gradients as the classic ``rgb`` picture or ``signed`` (sum over colour
            channels, diverging colormap, zero in the middle).
    """

    size: Size = "input"
    colormap: str = "auto"
    annotate: bool = False
    gradients: GradientStyle = "rgb"


def display_of(name: str) -> str:
    """The registry's display kind of an algorithm: ``heatmap``, ``magnitude`` or ``gradient``."""
    from convscope import algorithms

    return algorithms.get(name).display


def kind_of(name: str, style: Style) -> str:
    """``heatmap``, ``magnitude``, ``signed`` (colormapped) or ``rgb`` (the gradient picture)."""
    display = display_of(name)
    if display == "gradient":
        return "signed" if style.gradients == "signed" else "rgb"
    return display


def colormap_for(name: str, style: Style) -> str | None:
    """The colormap an algorithm's map is drawn with (None for the RGB gradient picture)."""
    kind = kind_of(name, style)
    if kind == "rgb":
        return None
    return AUTO[kind] if style.colormap == "auto" else style.colormap


@dataclass
class Rendered:
    """A map drawn for a still output: ``image`` (the map), ``overlay`` (CAMs over the frame),
    the colormap used and the value range the colours span (None for the RGB picture)."""

    image: np.ndarray
    overlay: np.ndarray | None
    colormap: str | None
    span: tuple[float, float] | None

    @property
    def picture(self) -> np.ndarray:
        return self.overlay if self.overlay is not None else self.image


def _box(frame_hw: tuple[int, int], prep: Preprocessing) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the part of the frame the model sees, in frame pixels."""
    h, w = frame_hw
    rh, rw, top, left, ch, cw = geometry(h, w, prep)
    y0, x0 = round(top * h / rh), round(left * w / rw)
    y1, x1 = round((top + ch) * h / rh), round((left + cw) * w / rw)
    return y0, x0, max(1, y1 - y0), max(1, x1 - x0)


def render_map(
    output: MapOutput, frame: np.ndarray, prep: Preprocessing, style: Style, model_input: np.ndarray | None = None
) -> Rendered:
    """Draw ``output`` (which must carry ``raw``) at the geometry ``style.size`` asks for.

    Args:
        output: the engine's map with its raw values.
        frame: the original RGB uint8 frame.
        prep: the model's preprocessing (where the model's input lies in the frame).
        style: size, colormap, gradient style.
        model_input: the frame as the network saw it (``Result.input``), for ``size="model"``.
    """
    if output.raw is None:
        raise ValueError("render_map needs the raw map: run the engine with keep_raw=True")
    kind = kind_of(output.algorithm, style)
    cmap = colormap_for(output.algorithm, style)
    raw = torch.from_numpy(np.asarray(output.raw, dtype=np.float32))
    if style.size == "model" and model_input is not None:
        base = np.asarray(model_input)
        box = (0, 0, base.shape[0], base.shape[1])
    else:
        base = np.asarray(frame)
        box = _box(base.shape[:2], prep)
    y0, x0, bh, bw = box
    size = (bh, bw)
    span = None
    if kind == "heatmap":
        up = render.resize(raw, size, mode="bilinear")
        span = (float(up.min()), float(up.max()))
        image = render.colorize(render.normalize(up), cmap).numpy()
    elif kind == "magnitude":
        up = render.resize(render.magnitude(raw), size, mode="bilinear")
        span = (float(up.min()), float(up.max()))
        image = render.colorize(render.normalize(up), cmap).numpy()
    elif kind == "signed":
        total = render.resize(raw.sum(dim=-3), size, mode="bilinear")
        m = float(total.abs().max())
        span = (-m, m)
        x01 = (total / m * 0.5 + 0.5).nan_to_num_(0.5, 0.5, 0.5) if m > 0 and np.isfinite(m) else torch.full_like(total, 0.5)
        image = render.colorize(x01, cmap).numpy()
    else:
        image = render.gradient_image(render.resize(raw, size, mode="bilinear")).numpy()
    overlay = None
    if display_of(output.algorithm) == "heatmap":
        region = torch.from_numpy(np.ascontiguousarray(base[y0 : y0 + bh, x0 : x0 + bw]))
        blended = render.overlay(torch.from_numpy(image), region).numpy()
        overlay = base.copy()
        overlay[y0 : y0 + bh, x0 : x0 + bw] = blended
    if (bh, bw) != base.shape[:2]:
        canvas = np.zeros_like(base)
        canvas[y0 : y0 + bh, x0 : x0 + bw] = image
        image = canvas
    return Rendered(image, overlay, cmap, span)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType
        return ImageFont.load_default()


def annotate(picture: np.ndarray, caption: str, colormap: str | None, span: tuple[float, float] | None) -> np.ndarray:
    """``picture`` with a caption band underneath and, for colormapped maps, a colour bar at the right.

    The bar runs from the colormap's low end (bottom) to its high end (top), labelled with the
    values the colours span (``span``).
    """
    h, w = picture.shape[:2]
    unit = max(12, min(h, w) // 24)
    font = _font(unit)
    bar_w = 0 if colormap is None else unit + 6 * unit  # strip plus room for the labels
    band = unit * 2
    out = Image.new("RGB", (w + bar_w, h + band), (255, 255, 255))
    out.paste(Image.fromarray(np.ascontiguousarray(picture)), (0, 0))
    draw = ImageDraw.Draw(out)
    text = caption
    while text and draw.textlength(text, font=font) > w + bar_w - unit:
        text = text[:-2] + "…" if len(text) > 2 else ""
    draw.text((unit // 2, h + band // 2), text, fill=(20, 20, 20), font=font, anchor="lm")
    if colormap is not None:
        table = lut(colormap, torch.device("cpu")).numpy()
        top, bottom = unit, h - unit
        strip = table[np.linspace(255, 0, max(2, bottom - top)).round().astype(int)]
        strip = np.repeat(strip[:, None, :], unit, axis=1)
        x = w + unit // 2
        out.paste(Image.fromarray(np.ascontiguousarray(strip)), (x, top))
        draw.rectangle((x - 1, top - 1, x + unit, top + strip.shape[0]), outline=(60, 60, 60))
        if span is not None:
            lo, hi = span
            draw.text((x + unit + 3, top), f"{hi:.3g}", fill=(20, 20, 20), font=font, anchor="lt")
            draw.text((x + unit + 3, top + strip.shape[0]), f"{lo:.3g}", fill=(20, 20, 20), font=font, anchor="lb")
    return np.asarray(out)


def still(
    output: MapOutput,
    frame: np.ndarray,
    prep: Preprocessing,
    style: Style,
    caption: str = "",
    model_input: np.ndarray | None = None,
) -> np.ndarray:
    """The picture a still command writes for ``output``: overlay for CAMs, the map otherwise,
    at ``style.size``, annotated when ``style.annotate``."""
    drawn = render_map(output, frame, prep, style, model_input)
    if not style.annotate:
        return drawn.picture
    return annotate(drawn.picture, caption, drawn.colormap, drawn.span)


def caption_of(output: MapOutput, probability: float | None, target_text: str) -> str:
    """``Grad-CAM · conv_head · class 285 Egyptian cat · p=0.774``."""
    from convscope import algorithms

    title = getattr(algorithms.get(output.algorithm), "title", output.algorithm)
    parts = [title]
    if output.layer:
        parts.append(output.layer)
    parts.append(target_text)
    if probability is not None:
        parts.append(f"p={probability:.3f}")
    return " · ".join(parts)
