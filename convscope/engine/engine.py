"""``Engine.run(frame, request) -> Result``: every view of a frame from one forward pass.

The engine orchestrates and knows no view or algorithm by name. Per frame: upload and
preprocess on the device; one forward (ReLU rule hooks and layer capture armed only when a
gradient is needed; otherwise under ``torch.inference_mode`` with no graph at all); the backward
passes the plan merged (:mod:`convscope.engine.backward`); each algorithm's raw map; each view
renders into its slot of one packed buffer; one device-to-host copy; each view unpacks its rows
into the :class:`~convscope.views.result.Result`. What runs is decided by the plan
(:mod:`convscope.engine.plan`) from the needs the algorithms and views declare.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from convscope import algorithms, render, views
from convscope.algorithms.options import active as algorithm_options
from convscope.engine.backward import Backward
from convscope.engine.capture import LayerCapture
from convscope.engine.fastmodel import FastModel, prepare
from convscope.engine.pack import Packer, split
from convscope.engine.plan import Plan, make_plan
from convscope.engine.resolve import resolve_request
from convscope.engine.rows import run_rows
from convscope.engine.rules import BackwardRules
from convscope.errors import ModelError, RequestError
from convscope.models.bundle import ModelBundle
from convscope.models.layers import LayerInfo, default_layer, discover_layers
from convscope.models.preprocess import frame_to_tensor, normalize, resize_crop
from convscope.request import ViewRequest
from convscope.views import Frame, HostFrame, Result
from convscope.vocabulary import INPUT, Grad, Rule

Strategy = Literal["auto", "sequential", "batched"]


@dataclass
class _Captured:
    """What algorithms see: the first ``rows`` rows of every captured tensor and the gradients.

    Layer outputs and their gradients come as ``B x C x h x w`` whatever the layer's layout
    (channels-last maps are permuted, tokens lose their class tokens and take their grid).
    """

    input: torch.Tensor
    acts: dict[str, torch.Tensor]
    grads: dict[Grad, torch.Tensor]
    rows: int
    layers: dict[str, LayerInfo]

    def activation(self, layer: str) -> torch.Tensor:
        return self.layers[layer].as_map(self.acts[layer][: self.rows])

    def grad(self, need: Grad) -> torch.Tensor:
        g = self.grads[need]
        return g if need.wrt == INPUT else self.layers[need.wrt].as_map(g)


def _logits(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        logits = out
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        logits = out[0]
    elif isinstance(getattr(out, "logits", None), torch.Tensor):
        logits = out.logits  # type: ignore[attr-defined]
    else:
        raise ModelError(f"the model returned a {type(out).__name__}, not a tensor of class scores")
    if logits.ndim != 2:
        raise ModelError(f"the model's output has shape {tuple(logits.shape)}, expected (batch, classes)")
    return logits


class Engine:
    """Computes a :class:`Result` per frame for a loaded model; see the module docstring.

    Use as a context manager (or call :meth:`close`): hooks are removed and the module's
    train/eval state, ``requires_grad`` flags and device are restored, also on exceptions.

    Args:
        bundle: the loaded model.
        device: where to run (defaults to ``bundle.device``; the module is moved back on close).
        strategy: ``auto`` (batched on CUDA, sequential elsewhere), ``sequential`` or ``batched``.
        sync_timings: on CUDA, synchronise at stage boundaries so ``Result.timings`` are exact
            (costs a little throughput; the benchmark turns it on).
        render_threads: on CPU, torch threads for preprocessing, algorithms and rendering (many small
            ops: with more threads each one waits on a barrier, and on a busy 2-core machine a
            descheduled worker stalls it for a time slice; measured 4x faster with 1 of 2 threads
            there). ``None`` leaves torch's setting. The setting is process-wide for those
            milliseconds.
        rule_mechanism: ``auto`` finds ReLU outputs with module hooks when a probe forward shows
            the model has no functional ReLU calls, else with a torch-function mode; ``mode``
            always uses the mode (for tests and measurements). See :mod:`convscope.engine.rules`.
        optimize: run a private copy of the model with BatchNorm folded into the convs and
            ``channels_last`` weights (checked against the model at start-up; captured layers
            always run unfolded, so activations are exact). See :mod:`convscope.engine.fastmodel`.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        device: torch.device | str | None = None,
        strategy: Strategy = "auto",
        sync_timings: bool = False,
        render_threads: int | None = 1,
        rule_mechanism: Literal["auto", "mode"] = "auto",
        optimize: bool = True,
    ) -> None:
        if strategy not in ("auto", "sequential", "batched"):
            raise RequestError(f"unknown strategy {strategy!r}: use auto, sequential or batched")
        self.bundle = bundle
        self.module = bundle.module
        self.device = torch.device(device) if device is not None else torch.device(bundle.device)
        self.strategy: Strategy = strategy
        self.sync_timings = sync_timings
        self.render_threads = render_threads
        self._was_training = self.module.training
        self._requires_grad = [(p, p.requires_grad) for p in self.module.parameters()]
        self._home = bundle.device
        self._closed = False
        self._capture: LayerCapture | None = None
        self._rules: BackwardRules | None = None
        self._fast = FastModel(self.module, {}, False, "plain module")
        self.prepared = self.module
        try:
            if self.device != torch.device(bundle.device):
                self.module.to(self.device)
            self.module.eval()
            for p, _ in self._requires_grad:
                p.requires_grad_(False)
            if self.device != torch.device(bundle.device):
                bundle = dataclasses.replace(bundle, device=self.device)
            self.layers: list[LayerInfo] = discover_layers(bundle)
            self.layer_info = {layer.name: layer for layer in self.layers}
            found = default_layer(self.layers)
            #: the feature map that feeds the head: the default CAM and activation-grid layer
            self.default_layer: str | None = found.name if found is not None else None
            example = None  # TorchScript: no probe forwards (hooks cannot see inside)
            if not bundle.scripted:
                h, w = bundle.preprocessing.input_size
                seed = torch.Generator().manual_seed(0)
                example = torch.randn(1, 3, h, w, generator=seed).to(self.device)
                if optimize:
                    self._fast = prepare(self.module, example, _logits)
                example = self._fast.input(example)
            #: the module the engine runs: its prepared copy (:mod:`convscope.engine.fastmodel`), or the
            #: user's own module (``module``) when preparation is off or failed its check
            self.prepared = self._fast.module
            self._capture = LayerCapture(self.prepared)
            self._rules = BackwardRules(self.prepared, example, force_mode=rule_mechanism == "mode")
            self._backward = Backward(self._capture, self._rules, self.layer_info)
        except BaseException:
            self.close()
            raise
        self.conv_layers = [layer for layer in self.layers if layer.kind == "conv"]
        self.linear_layers = [layer for layer in self.layers if layer.kind == "linear"]
        self.labels = bundle.labels
        self.num_classes = len(bundle.labels) or (
            (self.linear_layers[-1].channels or 0) if self.linear_layers else 0
        )
        self._resolved: dict[ViewRequest, ViewRequest] = {}
        self._plans: dict[ViewRequest, Plan] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook and restore the module's state (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._capture is not None:
            self._capture.close()
        if self._rules is not None:
            self._rules.close()
        # drop the private copy now (its conv weights), not whenever the engine object goes
        self._fast = FastModel(self.module, {}, False, self._fast.note)
        self.prepared = self.module
        for p, flag in self._requires_grad:
            p.requires_grad_(flag)
        self.module.train(self._was_training)
        if self.device != torch.device(self._home):
            self.module.to(self._home)

    @property
    def optimization(self) -> str:
        """One line on how the model runs: ``49 BatchNorm folded into convs, channels_last`` ..."""
        return self._fast.note

    @property
    def backward_strategy(self) -> str:
        """The strategy ``auto`` resolves to on this device."""
        if self.strategy != "auto":
            return self.strategy
        return "batched" if self.device.type == "cuda" else "sequential"

    # ------------------------------------------------------------------ requests
    def resolve(self, request: ViewRequest) -> ViewRequest:
        """``request`` validated for this model, with ``None`` layers and targets filled in.

        Raises:
            RequestError, LayerError: one-line messages for invalid selections.
        """
        try:
            cached = self._resolved.get(request)
        except TypeError:  # lists where tuples belong (e.g. decoded JSON): make it hashable
            panels = None if request.panels is None else tuple(request.panels)
            request = dataclasses.replace(request, algorithms=tuple(request.algorithms), panels=panels)
            cached = self._resolved.get(request)
        if cached is None:
            cached = resolve_request(
                request, self.layers, self.num_classes, self.bundle.scripted, self.default_layer
            )
            if len(self._resolved) > 256:
                self._resolved.clear()
            self._resolved[request] = cached
        return cached

    def plan(self, request: ViewRequest) -> Plan:
        """The (cached) plan of a request: what is captured and which backward passes run."""
        req = self.resolve(request)
        plan = self._plans.get(req)
        if plan is None:
            with algorithm_options(req.options):  # what algorithms' needs() read (smoothing, steps ...)
                plan = make_plan(req, views.for_request(req))
            if len(self._plans) > 256:
                self._plans.clear()
            self._plans[req] = plan
        return plan

    # ------------------------------------------------------------------ running
    def run(self, frame: np.ndarray | torch.Tensor, request: ViewRequest | None = None) -> Result:
        """Compute every view ``request`` asks for on one RGB uint8 frame (HxWx3)."""
        return self.run_batch([frame], request)[0]

    def run_batch(self, frames: list, request: ViewRequest | None = None) -> list[Result]:
        """One batched pass over several frames; class targets without an index use each frame's top-1."""
        if self._closed:
            raise RuntimeError("this Engine is closed")
        if not frames:
            return []
        req = self.resolve(request if request is not None else ViewRequest())
        clock = _Clock(self.device if self.sync_timings else None)
        try:
            with algorithm_options(req.options):  # what needs() and compute() read
                return self._run(frames, req, self.plan(req), clock)
        finally:
            assert self._capture is not None
            self._capture.end()
            self._rules.reset()

    def _run(self, frames: list, req: ViewRequest, plan: Plan, clock: _Clock) -> list[Result]:
        prep = self.bundle.preprocessing
        small = self.render_threads if self.device.type == "cpu" else None
        with torch.no_grad(), _threads(small):  # a resize is small work too (see render_threads)
            x255 = torch.cat([resize_crop(frame_to_tensor(f, self.device), prep) for f in frames])
            x = normalize(x255, prep)
        rows = x.shape[0]
        clock.lap("preprocess")
        assert self._capture is not None and self._rules is not None
        capture = self._capture
        wanted = dict(plan.capture)
        capture.begin(wanted)
        self._fast.exact(wanted)  # captured convs run unfolded: their outputs are the model's own
        grads: dict[Grad, torch.Tensor] = {}
        if plan.gradient:
            batched = self.backward_strategy == "batched"
            copies = self._backward.copies(plan, batched)
            with torch.enable_grad():
                xin = self._fast.input(x.repeat(copies, 1, 1, 1) if copies > 1 else x)
                if plan.input_grad:
                    xin = xin.detach().requires_grad_()
                self._rules.reset()
                deconv = any(p.rule == "deconvnet" for p in plan.passes)
                with self._rules.armed(deconv=deconv) if plan.guided else contextlib.nullcontext():
                    logits_all = _logits(self.prepared(xin))
                clock.lap("forward")
                top1 = logits_all[:rows].detach().argmax(dim=1)
                grads = self._backward.run(plan, logits_all, xin, top1, rows, batched)
            logits = logits_all[:rows].detach()
            clock.lap("backward")
        else:
            with torch.inference_mode():
                logits = _logits(self.prepared(self._fast.input(x)))
            top1 = logits.argmax(dim=1)
            clock.lap("forward")
            clock.lap("backward")
        with torch.no_grad(), _threads(small):
            acts = {name: t.detach() for name, t in capture.outputs.items()}
            captured = _Captured(x, acts, grads, rows, self.layer_info)
            timer = _CostTimer(self.device.type == "cpu" or self.sync_timings, self.device.type == "cuda")
            captured = run_rows(self, plan, captured, top1)  # extra input rows (engine/rows.py)
            timer.share_rows(plan)
            raws = {}
            for job in plan.jobs:
                raws[job.name] = algorithms.get(job.name).compute(captured, job.target, job.layer).float()
                timer.charge(f"map:{job.name}")
            clock.lap("algorithms")
            cmap = "gray" if req.grayscale else req.colormap
            frame = Frame(req, rows, x255, render.to_uint8_image(x255), logits, top1, raws, cmap, acts,
                          self.layer_info)
            packer = Packer()
            own = packer.slot("")  # the engine's own rows: top-1 (for targets) and the raw input
            own.add("top1", top1)
            if req.keep_raw:
                own.add("input", x)
            slots = [own] + [packer.slot(view.name) for view in plan.views]
            timer.restart()
            for view, slot in zip(plan.views, slots[1:], strict=True):
                view.render(frame, slot)
                timer.charge(view.name)
            clock.lap("render")
            host = split(packer.copy(), slots)
        clock.lap("copy")
        return self._results(req, plan, host, rows, clock.timings, timer.costs)

    def _results(
        self, req: ViewRequest, plan: Plan, host: dict[str, dict], rows: int, timings: dict[str, float],
        costs: dict[str, float] | None = None,
    ) -> list[Result]:
        mine = host[""]
        results = []
        for b in range(rows):
            context = HostFrame(req, self.labels, int(mine["top1"][b]), self._describe_rule)
            panels = {}
            for view in plan.views:
                panel = view.unpack(host[view.name], b, context)
                if panel is not None:
                    panels[view.name] = panel
            raw_input = mine["input"][b : b + 1] if "input" in mine else None
            results.append(Result(panels, raw_input, dict(timings), dict(costs or {})))
        return results

    def _describe_rule(self, rule: Rule) -> str:
        assert self._rules is not None
        return self._rules.describe(rule)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Temporarily run torch's CPU ops on ``n`` threads (no-op for None or the current count)."""
    current = torch.get_num_threads()
    if n is None or n == current:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(current)


class _CostTimer:
    """Seconds each view cost this frame (its algorithm's raw map, its extra rows, its drawing).

    Only where a host clock can see the work: on the CPU, or on CUDA with ``sync_timings``
    (each charge then synchronises). Otherwise ``costs`` stays empty rather than report kernel
    launch times as costs. The merged forward and backward passes are shared by every view and
    are not charged to any (they are ``Result.timings``' ``forward`` and ``backward``).
    """

    def __init__(self, enabled: bool, cuda: bool) -> None:
        self.enabled = enabled
        self._sync = enabled and cuda
        self.costs: dict[str, float] = {}
        self._last = time.perf_counter()

    def _now(self) -> float:
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def restart(self) -> None:
        if self.enabled:
            self._last = self._now()

    def charge(self, name: str) -> None:
        """Charge the time since the last charge (or restart) to view ``name``."""
        if not self.enabled:
            return
        now = self._now()
        self.costs[name] = self.costs.get(name, 0.0) + now - self._last
        self._last = now

    def share_rows(self, plan: Plan) -> None:
        """Split the extra rows' time (one batched forward and backward for all) evenly among
        the algorithms that declared rows."""
        if not self.enabled:
            return
        now = self._now()
        spent, self._last = now - self._last, now
        owners = [job.name for job in plan.jobs
                  if algorithms.get(job.name).needs(job.target, job.layer).rows]
        for name in owners:
            self.costs[f"map:{name}"] = self.costs.get(f"map:{name}", 0.0) + spent / len(owners)


class _Clock:
    """Seconds per stage; on CUDA optionally synchronised so each stage is charged its own work."""

    def __init__(self, sync_device: torch.device | None) -> None:
        self._sync = sync_device is not None and sync_device.type == "cuda"
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self._sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now
