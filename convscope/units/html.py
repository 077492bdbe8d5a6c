"""Static HTML pages of a ``convscope units`` run: one per layer, plus an index. No server, no script.

Each page is a grid of units (channels, in channel order): the channel's index, its mean maximum
over the dataset, a mark when it was never active (maximum <= 0 on every item), its top patches
(hover: score, source, frame, box) and, with ``--vis``, its feature visualisation.
"""

from __future__ import annotations

import html
from pathlib import Path

from convscope.units.dataset import slug

_CSS = """
body{font:13px system-ui,sans-serif;margin:16px;background:#111;color:#ddd}
a{color:#8cf} h1{font-size:18px} .meta{color:#999;margin-bottom:12px}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.unit{background:#1c1c1c;border:1px solid #333;border-radius:6px;padding:6px;width:312px}
.unit.dead{opacity:.55;border-style:dashed}
.unit h2{font-size:13px;margin:0 0 4px} .unit h2 span{color:#999;font-weight:normal}
.patches{display:grid;grid-template-columns:repeat(3,96px);gap:4px}
.patches img,.vis img{width:96px;height:96px;object-fit:contain;background:#000;display:block}
.patches figure{margin:0;position:relative}
.patches figcaption{position:absolute;left:2px;bottom:1px;font-size:10px;color:#fff;text-shadow:0 0 2px #000}
.vis{margin-top:4px;display:flex;gap:6px;align-items:center;color:#999}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def layer_page(layer: str, rows: list[dict], patches: dict[int, list[str]], vis: dict[int, str], meta: dict) -> str:
    rf = meta.get("receptive_fields", {}).get(layer, {})
    stats = meta.get("stats", {}).get(layer, {})
    means, active = stats.get("mean", []), stats.get("active", [])
    head = (f"<h1>{html.escape(meta.get('model', ''))} · {html.escape(layer)}</h1>"
            f"<div class=\"meta\">{len(rows)} units over {meta.get('items', '?')} item(s) of "
            f"{html.escape(str(meta.get('input', '')))} · receptive field {rf.get('size', ['?'])[0]:g} px, "
            f"stride {rf.get('stride', ['?'])[0]:g}, by {html.escape(str(rf.get('method', '?')))}"
            f"{' (gated by a global branch)' if rf.get('gated') else ''} · <a href=\"index.html\">all layers</a></div>")
    cards = []
    for row in rows:
        c = row["channel"]
        dead = c < len(active) and not active[c]
        mean = f"mean max {means[c]:.3g}" if c < len(means) else ""
        figs = []
        for rank, (t, src) in enumerate(zip(row["top"], patches.get(c, []), strict=False)):
            where = html.escape(t["source"] + (f" frame {t['frame']}" if t["frame"] is not None else ""))
            tip = f"score {t['score']:.4g} · {where} · box {t['box']}"
            figs.append(f"<figure><img src=\"{html.escape(src)}\" alt=\"channel {c} patch {rank}\" title=\"{tip}\">"
                        f"<figcaption>{t['score']:.3g}</figcaption></figure>")
        vis_html = ""
        if c in vis:
            vis_html = (f"<div class=\"vis\"><img src=\"{html.escape(vis[c])}\" alt=\"channel {c} feature "
                        f"visualisation\" title=\"optimised to excite channel {c}\">feature visualisation</div>")
        cards.append(f"<div class=\"unit{' dead' if dead else ''}\" id=\"c{c}\" data-channel=\"{c}\">"
                     f"<h2>channel {c} <span>{mean}{' · never active' if dead else ''}</span></h2>"
                     f"<div class=\"patches\">{''.join(figs)}</div>{vis_html}</div>")
    return _page(f"{layer} units", head + "<div class=\"grid\">" + "\n".join(cards) + "</div>")


def write_pages(outdir: Path, doc: dict, patches: dict, vis: dict, meta: dict) -> list[Path]:
    """Write ``{layer}.html`` per layer and ``index.html``; returns the layer pages."""
    pages = []
    links = []
    for layer, rows in doc["layers"].items():
        path = outdir / f"{slug(layer)}.html"
        path.write_text(layer_page(layer, rows, patches.get(layer, {}), vis.get(layer, {}), meta))
        pages.append(path)
        links.append(f"<li><a href=\"{html.escape(path.name)}\">{html.escape(layer)}</a> ({len(rows)} units)</li>")
    index = (f"<h1>{html.escape(doc['model'])}: units</h1><div class=\"meta\">{meta.get('items', '?')} item(s) of "
             f"{html.escape(str(meta.get('input', '')))}; data in <a href=\"units.json\">units.json</a></div>"
             f"<ul>{''.join(links)}</ul>")
    (outdir / "index.html").write_text(_page("units", index))
    return pages
