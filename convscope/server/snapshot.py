"""Snapshots of the dashboard (issue 14, item 3): the current moment, kept on the server.

One folder per snapshot under ``--snapshots DIR``: the source frame as ``source.png`` (lossless,
full resolution: ``convscope explain source.png`` reproduces the maps), every panel as PNG at
the resolution the engine rendered it, every raw array the :class:`~convscope.engine.Result`
holds as ``.npy`` (maps before normalisation, activations, FC values, the model input tensor),
and ``snapshot.json`` with the model, source, frame position, selection, predictions, layers and
algorithm settings. The page downloads the folder as a zip (``GET /snapshots/NAME.zip``).

The Result is walked generically: whatever panels and maps it holds are written, so new
algorithms or views need no change here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

DEFAULT_DIR = "convscope-snapshots"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")


def _png(path: Path, image: np.ndarray) -> str:
    Image.fromarray(np.ascontiguousarray(image)).save(path)
    return path.name


def _npy(path: Path, array: np.ndarray) -> str:
    np.save(path, np.ascontiguousarray(array))
    return path.name


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def write_snapshot(folder: Path, *, frame: np.ndarray, result: Any, state: dict, info: dict) -> dict:
    """Write one snapshot into the new folder ``folder``; return what ``snapshot.json`` says.

    Args:
        frame: the source frame (HxWx3 uint8) the result was computed from.
        result: the engine's ``Result``, computed with ``keep_raw``.
        state: the shared selection (``ViewState.as_dict()``).
        info: model, source, frame position, resolved layers and settings for the JSON.
    """
    folder.mkdir(parents=True, exist_ok=False)
    files: dict[str, str] = {"source": _png(folder / "source.png", frame)}
    panels: dict[str, dict] = {}
    for name in ("input", "channel"):  # plain image panels
        image = getattr(result, name, None)
        if isinstance(image, np.ndarray):
            panels[name] = {"png": _png(folder / f"{name}.png", image)}
    for name in ("activations", "fc"):  # panels with geometry and raw values
        view = getattr(result, name, None)
        if view is None:
            continue
        entry = {"png": _png(folder / f"{name}.png", view.image), "layer": view.layer}
        if getattr(view, "raw", None) is not None:
            entry["npy"] = _npy(folder / f"{name}.npy", view.raw)
        if getattr(view, "ranges", None) is not None:
            entry["ranges_npy"] = _npy(folder / f"{name}_ranges.npy", view.ranges)
        for key in ("rows", "cols", "channels", "neurons", "selected", "selected_value", "value_range", "empty"):
            if hasattr(view, key):
                entry[key] = _jsonable(getattr(view, key))
        panels[name] = entry
    maps: dict[str, dict] = {}
    for name, output in result.maps.items():
        entry = {"png": _png(folder / f"{name}.png", output.image), "layer": output.layer,
                 "target": _jsonable(output.target), "rule": output.rule, "empty": output.empty,
                 "value_range": _jsonable(output.value_range)}
        if output.overlay is not None:
            entry["overlay_png"] = _png(folder / f"{name}_overlay.png", output.overlay)
        if output.raw is not None:
            entry["npy"] = _npy(folder / f"{name}.npy", output.raw)
        maps[name] = entry
    for panel in result.panels.values():  # plugin views: whatever they show, with their header entry
        if panel.view in panels or panel.view.startswith("map:") or panel.view == "predictions":
            continue
        entry = {"meta": _jsonable(panel.meta())}
        for suffix, image in panel.images().items():
            entry[f"png{suffix}"] = _png(folder / f"{panel.view}{suffix}.png", image)
        panels[panel.view] = entry
    if getattr(result, "input_tensor", None) is not None:
        files["input_tensor"] = _npy(folder / "input_tensor.npy", result.input_tensor)
    report = {
        **info,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "selection": state,
        "predictions": [_jsonable(p) for p in result.predictions],
        "files": files,
        "panels": panels,
        "maps": maps,
        "reproduce": "convscope explain source.png -m MODEL --layer CAM_LAYER [--class C] --save-raw "
                     "gives the same raw maps (see the README)",
    }
    (folder / "snapshot.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def new_folder(root: Path, position: int | None) -> Path:
    """A fresh, sortable folder name: ``20261201-231500-f0042`` (``-2`` ... when taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-f{position:05d}" if position is not None else stamp
    folder = root / base
    n = 2
    while folder.exists():
        folder = root / f"{base}-{n}"
        n += 1
    return folder


def zip_bytes(root: Path, name: str) -> bytes | None:
    """The snapshot folder ``name`` under ``root`` as a zip; ``None`` if there is no such snapshot.

    Only plain names of folders directly inside ``root`` are accepted (no paths, no ``..``).
    """
    if not _NAME.match(name) or ".." in name:
        return None
    folder = root / name
    try:
        if folder.resolve().parent != root.resolve() or not (folder / "snapshot.json").is_file():
            return None
    except OSError:
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink():
                z.write(path, f"{name}/{path.name}")
    return buf.getvalue()
