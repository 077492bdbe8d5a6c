"""examples/notebook.ipynb runs top to bottom (nbclient) and shows what it promises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_example_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env_path}" if env_path else str(ROOT)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    data = [o.get("data", {}) for o in outputs if o.output_type in ("execute_result", "display_data")]
    # cs.explain: the summary sheet inline, predictions, a picture at the photo's own size
    assert any("image/png" in d and "convscope-explanation" in d.get("text/html", "") for d in data)
    assert "Egyptian cat" in text or "tabby" in text
    assert "gradcam picture: (300, 451, 3)" in text
    assert any("image/png" in d and "Figure" in d.get("text/plain", "") for d in data)  # ex.show()
    assert any("summary.png" in d.get("text/plain", "") and "gradcam.png" in d.get("text/plain", "") for d in data)
    # cs.live: an IFrame with the tokenised URL, a snapshot, the selection, then stopped
    assert any("<iframe" in d.get("text/html", "") and "token=" in d.get("text/html", "") for d in data)
    assert "live top-1:" in text and "Grad-CAM layer:" in text
    assert data[-1].get("text/plain") == "False"
