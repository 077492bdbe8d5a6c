"""Connecting to a Ray cluster and sizing the worker pool. Imports Ray only when called."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

from convscope.errors import UsageError


def import_ray() -> ModuleType:
    """``ray`` (with Ray Data), or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'convscope[ray]'") from None
    return ray


def connect(address: str) -> ModuleType:
    """Join the cluster at ``address`` (``auto``: the one on this machine or a new local one).

    A session that already called ``ray.init`` (a notebook, the tests) is used as it is.
    """
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "auto" else address, logging_level=logging.WARNING,
                     log_to_driver=False, include_dashboard=False)
        except ConnectionError as exc:
            raise UsageError(f"--ray {address}: cannot connect ({str(exc).splitlines()[0]})") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar for the whole job
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    return ray


@dataclass(frozen=True)
class Pool:
    """How many engine actors and what each holds."""

    workers: int
    cpus: float
    gpus: float

    def describe(self) -> str:
        each = f"{self.gpus:g} GPU" if self.gpus else f"{self.cpus:g} CPU"
        return f"{self.workers} worker(s), {each} each"


def size_pool(ray: ModuleType, workers: int | None, cpus_per_worker: float | None) -> Pool:
    """One actor per GPU when the cluster has GPUs, else one per ``cpus_per_worker`` CPUs (default 1)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus:
        return Pool(workers or gpus, cpus_per_worker or 1.0, 1.0)
    per = cpus_per_worker or 1.0
    return Pool(workers or max(1, int(cpus // per)), per, 0.0)
