"""``convscope evaluate --ray`` gives the local run's table (one actor of 1 CPU against one torch thread)."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import MODEL

from convscope.cli.main import main

ARGS = ("--algorithms", "gradcam,saliency", "--steps", "4", "--sanity-stages", "1", "--road-fractions", "0.3",
        "--batch-size", "2", "-q", *MODEL)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_evaluate_on_ray_equals_local(ray_session, photos, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["evaluate", "-i", str(photos), "-o", str(tmp_path / "local"), *ARGS]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(["evaluate", "-i", str(photos), "-o", str(tmp_path / "ray"), *ARGS,
                 "--ray", "--ray-workers", "1"]) == 0
    local = list(csv.DictReader((tmp_path / "local" / "metrics.csv").open()))
    remote = list(csv.DictReader((tmp_path / "ray" / "metrics.csv").open()))
    assert len(local) == 6 * 3  # six readable photos x (gradcam, saliency, random); the broken one skipped
    assert local == remote
    assert (tmp_path / "ray" / "summary.json").read_text() == (tmp_path / "local" / "summary.json").read_text()
