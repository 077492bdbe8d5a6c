"""``Engine.run(frame, request) -> Result``: every view of a frame from one forward pass.

Per frame: upload and preprocess on the device, one forward (ReLU rule hooks and layer capture
armed only when a gradient view is on; otherwise under ``torch.inference_mode`` with no graph at
all), the backward passes the plan merged, the algorithms' raw maps, on-device rendering, then
one packed device-to-host copy. Parameters never receive gradients: only
``torch.autograd.grad(..., inputs=[captured tensors / the input])`` is used.

Two backward strategies share one plan:

* ``sequential`` (default on CPU): one graph, one ``autograd.grad`` call per pass, the ReLU rule
  switched between calls. Costs one forward; the standard pass to the CAM layer only walks
  the tail.
* ``batched`` (default on CUDA): the input is repeated once per pass, rows carry their own
  targets and rules (a per-row mask in the ReLU hooks), one ``autograd.grad`` call. On a GPU a
  batch of 2-3 rows costs about as much as one.
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

from convscope.algorithms import INPUT, Grad, get
from convscope.algorithms.options import active as algorithm_options
from convscope.engine import render
from convscope.engine.capture import LayerCapture
from convscope.engine.fastmodel import FastModel, prepare
from convscope.engine.pack import Packer
from convscope.engine.plan import Plan, make_plan
from convscope.engine.request import Target, ViewRequest
from convscope.engine.resolve import resolve_request
from convscope.engine.result import FCMap, MapOutput, Mosaic, Prediction, Result
from convscope.engine.rows import run_rows
from convscope.engine.rules import RULES, BackwardRules
from convscope.errors import ModelError, RequestError
from convscope.models.bundle import ModelBundle
from convscope.models.layers import LayerInfo, default_layer, discover_layers
from convscope.models.preprocess import frame_to_tensor, normalize, resize_crop

Strategy = Literal["auto", "sequential", "batched"]
STAGES = ("preprocess", "forward", "backward", "algorithms", "render", "copy")


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
        self.net = self.module
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
            #: the module the engine runs: its prepared copy, or the user's own module
            self.net = self._fast.module
            self._capture = LayerCapture(self.net)
            self._rules = BackwardRules(self.net, example, force_mode=rule_mechanism == "mode")
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
        self._masks: dict[tuple, torch.Tensor] = {}

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
        self.net = self.module
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
            request = dataclasses.replace(
                request, algorithms=tuple(request.algorithms), panels=tuple(request.panels)
            )
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
            with algorithm_options(req.options):
                plan = make_plan(req)
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
            with algorithm_options(req.options):  # what needs() and compute() read (issue 13)
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
        assert self._capture is not None
        capture = self._capture
        wanted = dict(plan.capture)
        capture.begin(wanted)
        self._fast.exact(wanted)  # captured convs run unfolded: their outputs are the model's own
        grads: dict[Grad, torch.Tensor] = {}
        if plan.gradient:
            batched = self.backward_strategy == "batched" and len(plan.passes) > 1
            copies = len(plan.passes) if batched else 1
            with torch.enable_grad():
                xin = self._fast.input(x.repeat(copies, 1, 1, 1) if copies > 1 else x)
                if plan.input_grad:
                    xin = xin.detach().requires_grad_()
                self._rules.reset()
                if plan.guided:
                    with self._rules.armed(deconv=any(p.rule == "deconvnet" for p in plan.passes)):
                        out = self.net(xin)
                else:
                    out = self.net(xin)
                logits_all = _logits(out)
                clock.lap("forward")
                top1 = logits_all[:rows].detach().argmax(dim=1)
                if batched:
                    grads = self._backward_batched(plan, logits_all, xin, top1, rows)
                else:
                    grads = self._backward_sequential(plan, logits_all, xin, top1, rows)
            logits = logits_all[:rows].detach()
            clock.lap("backward")
        else:
            with torch.inference_mode():
                logits = _logits(self.net(self._fast.input(x)))
            top1 = logits.argmax(dim=1)
            clock.lap("forward")
            clock.lap("backward")
        with torch.no_grad(), _threads(small):
            acts = {name: t.detach() for name, t in capture.outputs.items()}
            captured = _Captured(x, acts, grads, rows, self.layer_info)
            captured = run_rows(self, plan, captured, top1)  # extra input rows (engine/rows.py)
            raws = {
                job.name: get(job.name).compute(captured, job.target, job.layer).float() for job in plan.jobs
            }
            clock.lap("algorithms")
            packer = Packer()
            grids = self._render(req, plan, x255, x, logits, top1, acts, raws, packer, rows)
            clock.lap("render")
            host = packer.copy()
        clock.lap("copy")
        return self._results(req, plan, host, grids, rows, clock.timings)

    def _score(self, target: Target, logits: torch.Tensor, top1: torch.Tensor, block: slice) -> torch.Tensor:
        """Per-row score of ``target`` for the rows in ``block`` (a 1-D tensor); contrast and counterfactual."""
        if target.versus is not None or target.negate:
            plain = dataclasses.replace(target, versus=None, negate=False)
            score = self._score(plain, logits, top1, block)
            if target.versus is not None:
                score = score - logits[block][:, target.versus]
            return -score if target.negate else score
        if target.kind == "class":
            rows = logits[block]
            if target.index is None:
                return rows.gather(1, top1.unsqueeze(1)).squeeze(1)
            return rows[:, target.index]
        assert self._capture is not None and target.layer is not None and target.index is not None
        a = self._capture.outputs[target.layer][block]
        info = self.layer_info[target.layer]
        if target.kind == "channel":
            return info.as_map(a)[:, target.index].flatten(1).amax(dim=1)
        return info.as_features(a)[:, target.index]

    def _wrt(self, name: str, xin: torch.Tensor) -> torch.Tensor:
        assert self._capture is not None
        return xin if name == INPUT else self._capture.outputs[name]

    def _backward_sequential(
        self, plan: Plan, logits: torch.Tensor, xin: torch.Tensor, top1: torch.Tensor, rows: int
    ) -> dict[Grad, torch.Tensor]:
        grads: dict[Grad, torch.Tensor] = {}
        block = slice(0, rows)
        scores = [self._score(p.target, logits, top1, block).sum() for p in plan.passes]
        last = len(plan.passes) - 1
        for i, (p, score) in enumerate(zip(plan.passes, scores, strict=True)):
            inputs = [self._wrt(w, xin) for w in p.wrt]
            self._rules.rule = p.rule
            got = _grad(score, inputs, retain=i < last)
            for need, g in zip(p.grads(), got, strict=True):
                grads[need] = g
        return grads

    def _backward_batched(
        self, plan: Plan, logits: torch.Tensor, xin: torch.Tensor, top1: torch.Tensor, rows: int
    ) -> dict[Grad, torch.Tensor]:
        blocks = [slice(i * rows, (i + 1) * rows) for i in range(len(plan.passes))]
        total = sum(
            self._score(p.target, logits, top1, b).sum() for p, b in zip(plan.passes, blocks, strict=True)
        )
        wrt = list(dict.fromkeys(w for p in plan.passes for w in p.wrt))
        key = (plan.passes, rows)
        mask = self._masks.get(key)
        if mask is None:
            if len(self._masks) > 64:
                self._masks.clear()
            flags = [RULES.index(p.rule) for p in plan.passes for _ in range(rows)]
            mask = torch.tensor(flags, dtype=torch.int8, device=self.device)
            self._masks[key] = mask
        self._rules.row_mask = mask
        self._rules.guided = plan.guided
        got = dict(zip(wrt, _grad(total, [self._wrt(w, xin) for w in wrt], retain=False), strict=True))
        grads: dict[Grad, torch.Tensor] = {}
        for p, b in zip(plan.passes, blocks, strict=True):
            for need in p.grads():
                grads[need] = got[need.wrt][b]
        return grads

    # ------------------------------------------------------------------ rendering
    def _render(
        self,
        req: ViewRequest,
        plan: Plan,
        x255: torch.Tensor,
        x: torch.Tensor,
        logits: torch.Tensor,
        top1: torch.Tensor,
        acts: dict[str, torch.Tensor],
        raws: dict[str, torch.Tensor],
        packer: Packer,
        rows: int,
    ) -> dict[str, tuple[render.Grid, int]]:
        """Render every panel into ``packer``; returns the grid geometry of the tiled panels."""
        grids: dict[str, tuple[render.Grid, int]] = {}
        cmap = "gray" if req.grayscale else req.colormap
        image = render.to_uint8_image(x255)
        packer.add("input", image)
        packer.add("top1", top1)
        probs = torch.softmax(logits.float(), dim=1)
        # from the logits, ties to the lower index: the explained top-1 (argmax) is shown first
        indices = torch.sort(logits.float(), dim=1, descending=True, stable=True).indices[:, : req.top_k]
        values = probs.gather(1, indices)
        packer.add("top_p", values)
        packer.add("top_i", indices)
        if req.keep_raw:
            packer.add("input_tensor", x)
        panels = set(req.panels)
        if {"activations", "channel"} & panels and req.conv_layer in acts:
            a = self.layer_info[req.conv_layer].as_map(acts[req.conv_layer][:rows]).float()
            lo, hi = a.amin(dim=(-2, -1), keepdim=True), a.amax(dim=(-2, -1), keepdim=True)
            if req.normalize == "channel":
                a01 = render.normalize(a, lo=lo, hi=hi)
            else:
                a01 = render.normalize(a, lo=lo.amin(dim=1, keepdim=True), hi=hi.amax(dim=1, keepdim=True))
            if "activations" in panels:
                grid = render.mosaic_grid(a.shape[1], a.shape[2], a.shape[3], req.mosaic_width)
                grids["mosaic"] = (grid, a.shape[1])
                packer.add("mosaic", render.tile(a01, grid, cmap))
                packer.add("ranges", torch.stack([lo[..., 0, 0], hi[..., 0, 0]], dim=-1))
                if req.keep_raw:
                    packer.add("mosaic_raw", a)
            if "channel" in panels:
                h, w = a.shape[-2:]
                size = (max(1, round(req.zoom_size * h / w)), req.zoom_size)
                packer.add("channel", render.zoom(a01[:, req.channel], size, cmap))
        if "fc" in panels and req.fc_layer in acts:
            v = self.layer_info[req.fc_layer].as_features(acts[req.fc_layer][:rows].float())
            grid = render.fc_grid(v.shape[1], req.fc_cell)
            grids["fc"] = (grid, v.shape[1])
            packer.add("fc", render.cells(render.normalize(v, (1,)), grid, cmap))
            packer.add("fc_range", torch.stack([v.amin(dim=1), v.amax(dim=1)], dim=1))
            if req.neuron is not None:
                packer.add("fc_value", v[:, req.neuron])
            if req.keep_raw:
                packer.add("fc_raw", v)
        size = tuple(x255.shape[-2:])
        for job in plan.jobs:
            raw = raws[job.name]
            display = get(job.name).display
            lo, hi = render.value_range(raw, (-2, -1) if display == "heatmap" else (-3, -2, -1))
            packer.add(f"range:{job.name}", torch.stack([lo, hi], dim=-1))  # -> MapOutput.empty
            if display == "heatmap":
                up = render.resize(raw, size, mode="bilinear")
                heat = render.colorize(render.normalize(up, (-2, -1)), cmap)
                packer.add(f"map:{job.name}", heat)
                packer.add(f"overlay:{job.name}", render.overlay(heat, image))
            elif display == "magnitude":
                packer.add(
                    f"map:{job.name}",
                    render.colorize(render.normalize(render.magnitude(raw), (-2, -1)), cmap),
                )
            else:
                packer.add(f"map:{job.name}", render.gradient_image(raw, lo=lo, hi=hi))
            if req.keep_raw:
                packer.add(f"raw:{job.name}", raw)
        return grids

    def _results(
        self,
        req: ViewRequest,
        plan: Plan,
        host: dict[str, np.ndarray],
        grids: dict[str, tuple[render.Grid, int]],
        rows: int,
        timings: dict[str, float],
    ) -> list[Result]:
        results = []
        labels = self.labels
        for b in range(rows):
            preds = [
                Prediction(int(i), labels[int(i)] if int(i) < len(labels) else f"class {int(i)}", float(p))
                for i, p in zip(host["top_i"][b], host["top_p"][b], strict=True)
            ]
            result = Result(input=host["input"][b], predictions=preds, timings=dict(timings))
            if "mosaic" in host:
                grid, channels = grids["mosaic"]
                result.activations = Mosaic(
                    req.conv_layer or "",
                    host["mosaic"][b],
                    grid.rows,
                    grid.cols,
                    grid.tile_h,
                    grid.tile_w,
                    channels,
                    host["ranges"][b],
                    host["mosaic_raw"][b] if "mosaic_raw" in host else None,
                )
            if "channel" in host:
                result.channel = host["channel"][b]
                result.channel_index = req.channel
            if "fc" in host:
                grid, n = grids["fc"]
                result.fc = FCMap(
                    req.fc_layer or "",
                    host["fc"][b],
                    grid.rows,
                    grid.cols,
                    grid.tile_w,
                    n,
                    req.neuron,
                    float(host["fc_value"][b]) if "fc_value" in host else None,
                    (float(host["fc_range"][b, 0]), float(host["fc_range"][b, 1])),
                    host["fc_raw"][b] if "fc_raw" in host else None,
                )
            top1 = int(host["top1"][b])
            for job in plan.jobs:
                target = job.target
                if target.kind == "class" and target.index is None:
                    target = dataclasses.replace(target, index=top1)
                algo = get(job.name)
                rules = [g.rule for g in algo.needs(job.target, job.layer).grads if g.rule != "standard"]
                lo, hi = (float(v) for v in host[f"range:{job.name}"][b])
                result.maps[job.name] = MapOutput(
                    algorithm=job.name,
                    target=target,
                    layer=job.layer,
                    image=host[f"map:{job.name}"][b],
                    overlay=host[f"overlay:{job.name}"][b] if f"overlay:{job.name}" in host else None,
                    raw=host[f"raw:{job.name}"][b] if f"raw:{job.name}" in host else None,
                    rule=self._rules.describe(rules[0] if rules else "standard"),
                    empty=render.empty_reason(lo, hi),
                    value_range=(lo, hi),
                )
            if "input_tensor" in host:
                result.input_tensor = host["input_tensor"][b : b + 1]
            results.append(result)
        return results


def _grad(score: torch.Tensor, inputs: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
    """Gradients of ``score`` w.r.t. ``inputs`` only (never parameters); zeros where unused."""
    if not score.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    got = torch.autograd.grad(score, inputs, retain_graph=retain, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, got, strict=True)]


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
