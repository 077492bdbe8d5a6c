"""Records of finished items, so a stopped job resumes where it stopped.

After a worker has written an item it writes ``OUTDIR/.convscope/done/<hash of rel>.json``
(atomically: a temporary file renamed into place): the SHA-256 of the input file's bytes, the
job's fingerprint, the item's report entry and the SHA-256 of every file it wrote. A later run
skips the item only when all of that still holds: same input *content* (a photo replaced under
the same name is redone), same settings, and every output present with the recorded content (a
deleted or damaged output is redone). A record is the last thing written, so an item cut off
half-way has none and is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from convscope.stills.inputs import Item
from convscope.stills.outputs import Layout, relative

LEDGER = ".convscope"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str | None:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


def record_path(base: Path, rel: str) -> Path:
    return base / LEDGER / "done" / f"{hashlib.sha256(rel.encode()).hexdigest()[:32]}.json"


def written_files(entry: dict, item: Item, layout: Layout) -> list[str]:
    """Every file the local writer wrote for an item, relative to OUTDIR."""
    files = [relative(layout.folder(item) / "summary.png", layout.base)]
    if entry.get("input_tensor"):
        files.append(entry["input_tensor"])
    for output in entry["outputs"]:
        files += [p for p in (output["image"], output["raw"]) if p]
    return files


def write_record(layout: Layout, item: Item, input_sha: str, fingerprint: str, entry: dict,
                 warnings: list[str]) -> Path:
    files = {f: file_sha256(layout.base / f) for f in written_files(entry, item, layout)}
    record = {"rel": item.rel, "input_sha256": input_sha, "job": fingerprint, "entry": entry,
              "warnings": warnings, "files": files}
    path = record_path(layout.base, item.rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)
    return path


def finished(layout: Layout, rel: str, input_sha: str, fingerprint: str) -> dict | None:
    """The item's record when its work is done and intact, else None (redo it)."""
    try:
        record = json.loads(record_path(layout.base, rel).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("rel") != rel or record.get("input_sha256") != input_sha or record.get("job") != fingerprint:
        return None
    for name, digest in record.get("files", {}).items():
        if digest is None or file_sha256(layout.base / name) != digest:
            return None
    return record
