"""Regenerate convscope/render/colormap_tables.py from matplotlib's maintained colormaps.

The renderer needs 256-entry lookup tables, not matplotlib itself (importing it costs about half a
second of start-up), so the tables are sampled here once and stored as hex strings.
tests/engine/test_colormap_tables.py checks that the stored tables still equal matplotlib's.

    .venv/bin/python scripts/make_colormaps.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: name -> kind: ``sequential`` for magnitudes, ``diverging`` for signed values, ``classic`` (jet).
NAMES = {
    "jet": "classic",
    "turbo": "classic",
    "viridis": "sequential",
    "inferno": "sequential",
    "magma": "sequential",
    "plasma": "sequential",
    "cividis": "sequential",
    "gray": "sequential",
    "coolwarm": "diverging",
    "RdBu_r": "diverging",
    "seismic": "diverging",
}


def sample(name: str) -> np.ndarray:
    """The 256x3 uint8 table of a matplotlib colormap (its own 256 entries, rounded)."""
    import matplotlib

    cmap = matplotlib.colormaps[name].resampled(256)
    return np.round(cmap(np.arange(256))[:, :3] * 255.0).astype(np.uint8)


def main() -> None:
    import matplotlib

    lines = [
        '"""Colormap lookup tables sampled from matplotlib ' + matplotlib.__version__ + " by scripts/make_colormaps.py.",
        "",
        "Generated: do not edit. Each table is 256 RGB entries as 1536 hex digits.",
        '"""',
        "",
        "KINDS = {",
    ]
    lines += [f"    {name!r}: {kind!r}," for name, kind in NAMES.items()]
    lines += ["}", "", "TABLES = {"]
    for name in NAMES:
        hexes = sample(name).tobytes().hex()
        chunks = [hexes[i : i + 96] for i in range(0, len(hexes), 96)]
        lines.append(f"    {name!r}: (")
        lines += [f'        "{c}"' for c in chunks]
        lines.append("    ),")
    lines += ["}", ""]
    out = Path(__file__).resolve().parent.parent / "convscope" / "render" / "colormap_tables.py"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
