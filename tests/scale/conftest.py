"""One local Ray for the whole session (ray.init(num_cpus=2)), small real photos, one local reference run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))  # cli_helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scale_helpers

from scale_helpers import explain_local, write_photos  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'convscope[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats thread (offline machines)
        for attempt in range(2):  # on a loaded machine the raylet can miss Ray's fixed 30 s start window
            try:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                break
            except Exception:
                ray.shutdown()
                if attempt:
                    raise
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("scale") / "photos")


@pytest.fixture(scope="session")
def local_run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    explain_local(photos, out, "--batch-size", "2")
    return out
