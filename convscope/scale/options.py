"""The ``--ray`` flags, shared by ``explain`` and ``evaluate``. Adding them imports nothing of Ray."""

from __future__ import annotations

import argparse


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Ray (pip install 'convscope[ray]')")
    g.add_argument("--ray", nargs="?", const="auto", default=None, metavar="auto|ADDRESS",
                   help="run on a Ray cluster: auto (the cluster `ray start` made on this machine, else a new "
                   "local one) or its address (host:6379, ray://host:10001)")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="engine actors (default: one per GPU, else one per --ray-cpus CPUs)")
    g.add_argument("--ray-cpus", type=float, default=None, metavar="C", help="CPUs per engine actor (default: 1)")
    # seconds each actor waits after a batch: lets the tests kill a worker mid-run
    g.add_argument("--ray-batch-delay", type=float, default=0.0, help=argparse.SUPPRESS)
