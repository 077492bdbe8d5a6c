"""What ``convscope evaluate`` writes: per-image CSV, a per-method table (CSV and JSON) and PNG plots.

* ``metrics.csv``: one row per image and method;
* ``summary.csv`` / ``summary.json``: per method the mean and the standard error of each metric
  over the images, and the sanity check's mean rank correlation per randomisation stage;
* ``curves.png``: the mean deletion and insertion curves per method;
* ``sanity.png``: mean Spearman rank correlation against the number of randomised top layers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

METRICS = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "road_score")
#: below this mean rank correlation at full randomisation a method "changes" (passes the check)
SANITY_PASS = 0.5


def sanity_columns(rows: list[dict]) -> list[str]:
    cols = {k for r in rows for k in r if k.startswith("sanity_rho_top")}
    return sorted(cols, key=lambda k: int(k.removeprefix("sanity_rho_top")))


def summarise(rows: list[dict], meta: dict) -> dict:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sanity = sanity_columns(rows)
    table = []
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        entry = {"method": m, "images": len(mine)}
        for key in (*METRICS, *sanity):
            v = np.array([r[key] for r in mine if key in r], dtype=np.float64)
            if len(v):
                entry[key] = float(v.mean())
                entry[f"{key}_sem"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        if sanity and sanity[-1] in entry:
            entry["sanity_passes"] = bool(entry[sanity[-1]] < SANITY_PASS)
        table.append(entry)
    return {**meta, "sanity_pass_below": SANITY_PASS, "methods": table}


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def write_all(out: Path, rows: list[dict], curves: dict[str, dict[str, list[np.ndarray]]], meta: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows, meta)
    written = [write_csv(out / "metrics.csv", rows)]
    flat = [{k: v for k, v in e.items()} for e in summary["methods"]]
    written.append(write_csv(out / "summary.csv", flat))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    written.append(out / "summary.json")
    written += plot(out, summary, curves, meta.get("layers_randomisable"))
    return written


def plot(out: Path, summary: dict, curves: dict, layer_count: int | None) -> list[Path]:
    """The two PNG figures (matplotlib, Agg; ``pip install 'convscope[evaluate]'``); none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for method, by_kind in curves.items():
            c = np.concatenate(by_kind[kind]).mean(0)
            x = np.linspace(0, 1, len(c))
            auc = next(e[f"{kind}_auc"] for e in summary["methods"] if e["method"] == method)
            ax.plot(x, c, label=f"{method} (AUC {auc:.3f})", linestyle="--" if method == "random" else "-")
        ax.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} is better)")
        ax.set_xlabel("fraction of pixels " + ("removed" if kind == "deletion" else "inserted"))
        ax.set_ylabel("probability of the top-1 class")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png")
    plt.close(fig)
    paths.append(out / "curves.png")
    paths += plot_sanity(out, summary, layer_count)
    return paths


def plot_sanity(out: Path, summary: dict, layer_count: int | None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    cols = [k for k in summary["methods"][0] if k.startswith("sanity_rho_top") and not k.endswith("_sem")]
    if cols:
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
        cuts = [0] + [int(k.removeprefix("sanity_rho_top")) for k in cols]
        for e in summary["methods"]:
            if cols[0] in e:
                ax.plot(cuts, [1.0] + [e[k] for k in cols], marker="o", label=e["method"])
        ax.axhline(SANITY_PASS, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("top layers randomised" + (f" (of {layer_count})" if layer_count else ""))
        ax.set_ylabel("Spearman rho with the trained model's map")
        ax.set_title("cascading model randomisation (Adebayo et al. 2018)\nlower = the map follows the model")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "sanity.png")
        plt.close(fig)
        paths.append(out / "sanity.png")
    return paths
