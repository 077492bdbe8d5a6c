"""``convscope bench``: the dashboard's frame rate against the bare network's, on the same frames.

Two loops run in one process over frames decoded once up front (so decoding is measured by
neither), interleaved in rounds so that machine drift hits both alike:

* **network**: what a user's plain classification loop does: preprocess, ``model(x)`` under
  ``torch.inference_mode``, top-1 to the host;
* **dashboard**: the live pipeline without the socket: ``Engine.run`` plus encoding every panel
  exactly as the server sends it.

The headline is ``ratio = dashboard_fps / network_fps``.
"""

from convscope.bench.config import VIEW_SETS, BenchConfig, view_request
from convscope.bench.report import BenchReport
from convscope.bench.runner import run_bench

__all__ = ["VIEW_SETS", "BenchConfig", "BenchReport", "run_bench", "view_request"]
