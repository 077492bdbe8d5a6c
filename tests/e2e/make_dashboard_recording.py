"""Make docs/dashboard.gif with the dashboard's own recorder (the ● Rec button's "every frame" mode).

Not a test; run by hand (needs /usr/bin/chromium)::

    .venv/bin/python tests/e2e/make_dashboard_recording.py [--frames 36] [--size 120] [-m efficientnet_lite0]

``convscope live`` plays a clip panned across skimage's photos (``tests/helpers/media.py``); the
page pauses it on frame 0, starts an every-frame recording of the whole dashboard (every panel,
tiled) as a GIF, plays the clip to its end and stops: one output frame per input frame.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from chromium import launch  # noqa: E402
from helpers.media import encode_video  # noqa: E402
from live_process import LiveProcess  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.gif"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=36)
    ap.add_argument("--fps", type=int, default=12)
    ap.add_argument("--size", type=int, default=120, help="panel height in the GIF")
    ap.add_argument("-m", "--model", default="efficientnet_lite0")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="convscope-gif-"))
    clip = encode_video(work / "clip.mp4", "h264", frames=args.frames, fps=args.fps)
    t0 = time.monotonic()
    live = LiveProcess("--source", str(clip), "-m", args.model, "--no-token", "--snapshots", str(work / "out"),
                       start_timeout=600)
    try:
        for browser in launch():
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(live.url)
            wait = lambda cond, page=page: page.wait_for_function(cond, timeout=900_000)  # noqa: E731
            wait("window.convscope && window.convscope.framesDrawn > 0 && window.convscope.playback")
            page.evaluate("window.convscope.send({type: 'pause', paused: true})")
            page.evaluate("window.convscope.send({type: 'seek', frame: 0})")
            wait("!window.convscope.playback.playing && window.convscope.meta.source_frame.index === 0")
            page.evaluate(f"window.convscope.send({{type: 'record', action: 'start', panels: 'all', every_frame: true, "
                          f"size: {args.size}, formats: ['gif']}})")
            wait("window.convscope.recording && window.convscope.recording.active")
            page.evaluate("window.convscope.send({type: 'pause', paused: false})")
            wait(f"window.convscope.meta.source_frame.index === {args.frames - 1}")
            page.click("[data-testid=record]")
            wait("window.convscope.lastRecording")
            done = page.evaluate("window.convscope.lastRecording")
            break
    finally:
        live.stop()
    if done.get("error"):
        print(f"recording error: {done['error']}", file=sys.stderr)
        print("".join(live.stderr[-20:]), file=sys.stderr)
    gif = work / "out" / done["files"][0]["name"]
    shutil.copyfile(gif, args.output)
    print(f"wrote {args.output}: {done['frames']} frames, {done['width']}x{done['height']}, "
          f"{args.output.stat().st_size / 1e6:.2f} MB, input frames {done['input_frames']}, panels {', '.join(done['panels'])}, "
          f"{time.monotonic() - t0:.0f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
