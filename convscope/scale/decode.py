"""The decode stage of ``explain --ray`` (Ray Data tasks): read, hash, check the ledger, decode.

Kept free of torch and of the engine, so the many short-lived decode workers start fast: only
the engine actors import torch.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from convscope.scale import ledger
from convscope.stills.inputs import Unreadable, read_image
from convscope.stills.outputs import Layout


def decode_batch(row: dict, layout: dict, fingerprint: str | None, max_pixels: int | None) -> dict:
    """One planned batch: read, hash and decode each file; finished items carry their record instead.

    ``fingerprint`` None: no ledger (``evaluate``), every readable item is decoded.
    """
    from convscope.pixels import set_max_pixels

    set_max_pixels(max_pixels)
    layout = Layout(Path(layout["base"]), layout["file_stem"], layout["ext"], layout["flat"])
    out = []
    for index, rel, path in json.loads(row["items"]):
        entry = {"index": index, "rel": rel, "path": path}
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            out.append({**entry, "status": "bad", "reason": _read_error(exc)})
            continue
        entry["sha"] = digest = ledger.sha256(data)
        record = None if fingerprint is None else ledger.finished(layout, rel, digest, fingerprint)
        if record is not None:
            out.append({**entry, "status": "done", "record": record})
            continue
        try:
            image = read_image(path)
        except Unreadable as exc:
            out.append({**entry, "status": "bad", "reason": str(exc)})
            continue
        out.append({**entry, "status": "todo", "image": image})
    return {"batch": row["batch"], "payload": pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)}


def _read_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read ({exc.strerror or exc})"
