"""Record docs/dashboard.gif: the dashboard on the demo source, as a browser shows it.

Not a test; run by hand (needs /usr/bin/chromium)::

    .venv/bin/python tests/e2e/make_dashboard_gif.py [--seconds 16] [--width 720]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from live_process import LiveProcess  # noqa: E402
from test_live_dashboard import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.gif"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=18.0)
    ap.add_argument("--every", type=float, default=0.7, help="seconds between captured frames")
    ap.add_argument("--width", type=int, default=600)
    args = ap.parse_args()
    live = LiveProcess("--source", "demo", "--no-token")
    frames: list[Image.Image] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            scale = args.width / 1440  # the browser renders at the GIF's size: faster screenshots
            page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=scale)
            page.goto(live.url)
            page.wait_for_function("window.convscope && window.convscope.framesDrawn > 1", timeout=120_000)
            page.select_option("[data-testid=conv-layer-select]", index=30)
            page.wait_for_function("window.convscope.framesDrawn > 3", timeout=120_000)
            end = time.monotonic() + args.seconds
            stamps = []
            while time.monotonic() < end:
                stamps.append(time.monotonic())
                frames.append(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
                time.sleep(max(0.0, stamps[-1] + args.every - time.monotonic()))
            browser.close()
    finally:
        live.interrupt()
    palette = [f.quantize(colors=96, method=Image.Quantize.MEDIANCUT) for f in frames]
    durations = [round(1000 * (b - a)) for a, b in zip(stamps, stamps[1:], strict=False)] + [round(1000 * args.every)]
    palette[0].save(OUT, save_all=True, append_images=palette[1:], duration=durations, loop=0, optimize=True)
    print(f"{OUT}: {len(frames)} frames, {OUT.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
