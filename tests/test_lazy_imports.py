"""Start-up stays cheap: ``import convscope`` loads no torch, the CLI's parser no PyAV, timm or server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)


def test_import_convscope_is_cheap_and_the_parser_imports_no_heavy_extras():
    done = _run(
        "import sys, convscope\n"
        "heavy = {'torch', 'importlib.metadata', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert callable(convscope.explain) and 'convscope.api' in sys.modules\n"
        "from convscope.cli.main import build_parser\n"
        "build_parser()\n"
        "extras = {'av', 'timm', 'starlette', 'uvicorn', 'websockets', 'matplotlib', 'cv2'} & set(sys.modules)\n"
        "assert not extras, extras\n"
    )
    assert done.returncode == 0, done.stderr
