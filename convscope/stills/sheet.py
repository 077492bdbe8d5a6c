"""``summary.png``: one labelled contact sheet per input (the input, top-k, every map).

A person opening an output folder should see at a glance what the network predicted and where
each algorithm looked, without matching file names to targets by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TILE = 224
PAD = 8
LINE = 16
BG = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
BAR = (66, 133, 244)
WARN = (196, 52, 24)
BAND = (24, 24, 24)
BAND_INK = (255, 196, 80)


@dataclass(frozen=True)
class Panel:
    """One labelled tile: an HxWx3 uint8 image and up to three caption lines.

    ``blank``: why the image shows nothing (``all zero: ...``); it is stamped over the tile and
    added as a last caption line, so a flat picture is never taken for a result.
    """

    image: np.ndarray
    caption: tuple[str, ...]
    blank: str | None = None


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """``text`` shortened with an ellipsis so it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _tile(image: np.ndarray) -> Image.Image:
    """The image scaled to fit a TILE x TILE square (aspect kept), centred on white."""
    im = Image.fromarray(np.ascontiguousarray(image))
    scale = TILE / max(im.width, im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im.resize(size, Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (TILE, TILE), BG)
    canvas.paste(im, ((TILE - size[0]) // 2, (TILE - size[1]) // 2))
    return canvas


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font, lines: int = 3) -> list[str]:
    """``text`` broken into at most ``lines`` lines of ``width`` pixels (the last one shortened)."""
    out: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            out.append(line)
            line = word
        else:
            line = trial
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[: lines - 1] + [" ".join(out[lines - 1 :])]
    return [_fit(draw, x, width, font) for x in out]


def stamp_blank(tile: Image.Image, reason: str) -> Image.Image:
    """A dark band across the tile's middle saying ``BLANK MAP`` and why."""
    draw = ImageDraw.Draw(tile)
    font, bold = _font(12), _font(14)
    lines = _wrap(draw, reason, TILE - 2 * PAD - 8, font)
    height = LINE + 4 + LINE * len(lines) + 2 * PAD
    top = (TILE - height) // 2
    draw.rectangle((PAD, top, TILE - PAD, top + height), fill=BAND, outline=BAND_INK)
    draw.text((TILE // 2, top + PAD), "BLANK MAP", fill=BAND_INK, font=bold, anchor="ma")
    for i, line in enumerate(lines):
        draw.text((TILE // 2, top + PAD + LINE + 4 + i * LINE), line, fill=BAND_INK, font=font, anchor="ma")
    return tile


def predictions_panel(predictions: Sequence[tuple[int, str, float]]) -> np.ndarray:
    """The top-k as a TILE x TILE image: one bar per class, probability and label."""
    canvas = Image.new("RGB", (TILE, TILE), BG)
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    rows = max(1, len(predictions))
    step = min(40, (TILE - 2 * PAD) // rows)
    for r, (index, label, prob) in enumerate(predictions):
        y = PAD + r * step
        tag = f"#{index}"
        room = TILE - 2 * PAD - round(draw.textlength(tag, font=font)) - 6
        draw.text((PAD, y), _fit(draw, f"{prob * 100:5.1f}%  {label}", room, font), fill=INK, font=font)
        draw.text((TILE - PAD, y), tag, fill=MUTED, font=font, anchor="ra")
        width = max(1, round((TILE - 2 * PAD) * min(max(prob, 0.0), 1.0)))
        draw.rectangle((PAD, y + LINE, PAD + width, y + LINE + 5), fill=BAR)
    return np.asarray(canvas)


def contact_sheet(title: str, panels: Sequence[Panel], columns: int = 4) -> np.ndarray:
    """Lay ``panels`` out in a grid under ``title``; returns an HxWx3 uint8 image.

    Args:
        title: the heading (input name and model).
        panels: tiles in reading order, each with its caption lines.
        columns: tiles per row at most.
    """
    if not panels:
        raise ValueError("a contact sheet needs at least one panel")
    cols = max(1, min(columns, len(panels)))
    rows = (len(panels) + cols - 1) // cols
    caption_h = LINE * max(len(p.caption) + (p.blank is not None) for p in panels) + 4
    cell_w, cell_h = TILE + PAD, caption_h + TILE + PAD
    head = LINE + 2 * PAD
    sheet = Image.new("RGB", (PAD + cols * cell_w, head + rows * cell_h), BG)
    draw = ImageDraw.Draw(sheet)
    title_font, font = _font(14), _font(12)
    draw.text((PAD, PAD), _fit(draw, title, sheet.width - 2 * PAD, title_font), fill=INK, font=title_font)
    for i, panel in enumerate(panels):
        x = PAD + (i % cols) * cell_w
        y = head + (i // cols) * cell_h
        for j, line in enumerate(panel.caption):
            draw.text((x, y + j * LINE), _fit(draw, line, TILE, font), fill=INK if j == 0 else MUTED, font=font)
        tile = _tile(panel.image)
        if panel.blank is not None:
            draw.text((x, y + len(panel.caption) * LINE), _fit(draw, f"blank: {panel.blank}", TILE, font),
                      fill=WARN, font=font)
            tile = stamp_blank(tile, panel.blank)
        sheet.paste(tile, (x, y + caption_h))
    return np.asarray(sheet)
