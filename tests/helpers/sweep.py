"""The architecture sweep: one engine per model, every layer kind, every panel, checked against
references that do not use convscope's code (issue 11, "any model, any layer, never silently wrong").

Used by ``tests/models/test_sweep.py`` (a fixed list of architectures, asserted) and by
``benchmarks/sweep.py MODEL...`` (any model names, a table). :func:`sweep_model` runs everything
for one model and returns a :class:`ModelReport`; nothing in it asserts, so one failure does not
hide the others.

References (all on the user's own module, after the engine is closed, same input tensor as the
engine's ``Result.input_tensor``, same class as the engine's Grad-CAM target):

* **Default layer.** :func:`recommended_layers` names, per model family, the module whose output
  pytorch-grad-cam's documentation recommends as the Grad-CAM target (``model.layer4[-1]``,
  ``model.features[-1]``, ``Mixed_7c``, ``inception5b``, ``blocks[-1].norm1`` ...), or, where its
  docs name a module inside the last block, the last spatial output before the global pooling
  (Swin's final ``norm``). The engine's default layer must output the *same tensor values* as one
  of them: names may differ (``features`` and ``features[-1]`` are the same output).
* **Grad-CAM**: written out with this module's own forward hooks: the layer output ``A`` (tokens
  reshaped to their grid, the class / distillation tokens dropped; channels-last permuted),
  ``G = d logit / dA``, ``ReLU(sum_k mean(G_k) A_k)``. Optionally pytorch-grad-cam's ``GradCAM``
  with a ``reshape_transform`` (compared after bilinear upsampling: it returns a normalised map at
  the input size).
* **Guided backprop**: the gradient of the logit with ``torch.nn.functional.relu`` / ``relu6`` /
  ``hardtanh(0, x)``, ``torch.relu`` and ``Tensor.relu`` replaced by the written-out Functions of
  :mod:`helpers.guided` (``nn.ReLU`` / ``nn.ReLU6`` modules call those too), every other
  activation (GELU, SiLU, Hardswish ...) standard, as convscope's docs define it.

A reference map that is all zero, constant or non-finite is *degenerate*: the engine must label
that map empty (``MapOutput.empty``) rather than show it, and is not compared at r.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.guided import GuidedReLU, GuidedReLU6

R_MIN = 0.999
#: a panel "has spread" when its 8-bit image spans at least this many grey levels
SPREAD_MIN = 8
MAP_LAYOUTS = ("map", "channels_last", "tokens")
KINDS = ("conv", "block", "norm", "act", "tokens", "linear")


# ---------------------------------------------------------------------------------------------
# Per-family references: what pytorch-grad-cam's docs recommend (the first name), then other
# modules with the same output by the rule "the last spatial output before the global pooling".
# Paths accept Python indices: "blocks[-1].norm1".
# ---------------------------------------------------------------------------------------------

#: (module class name, module path prefix) -> acceptable reference layers, layout, note
FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    # torchvision
    "torchvision.ResNet": (("layer4[-1]",), "map"),
    "torchvision.VGG": (("features[-1]",), "map"),
    "torchvision.DenseNet": (("features[-1]",), "map"),  # norm5; the ReLU after it is functional
    "torchvision.MobileNetV2": (("features[-1]",), "map"),  # Conv2dNormActivation: after BN + ReLU6
    "torchvision.MobileNetV3": (("features[-1]",), "map"),  # after BN + Hardswish
    "torchvision.EfficientNet": (("features[-1]",), "map"),  # after BN + SiLU
    "torchvision.ConvNeXt": (("features[-1]",), "map"),
    "torchvision.RegNet": (("trunk_output[-1]",), "map"),
    "torchvision.GoogLeNet": (("inception5b",), "map"),
    "torchvision.Inception3": (("Mixed_7c",), "map"),
    "torchvision.ShuffleNetV2": (("conv5",), "map"),
    "torchvision.MNASNet": (("layers[-1]",), "map"),
    # SqueezeNet has no docs entry: the rule gives the class-map ReLU before the global pooling;
    # features[-1] is accepted too (the last feature map before the classifier's conv).
    "torchvision.SqueezeNet": (("classifier[2]", "features[-1]"), "map"),
    "torchvision.VisionTransformer": (("encoder.layers[-1].ln_1",), "tokens"),
    "torchvision.SwinTransformer": (("norm",), "channels_last"),
    # timm
    "timm.ResNet": (("layer4[-1]",), "map"),
    "timm.EfficientNet": (("bn2",), "map"),  # BatchNormAct2d: after BN + activation
    "timm.MobileNetV3": (("blocks[-1]",), "map"),  # timm pools before conv_head
    "timm.ByobNet": (("final_conv",), "map"),  # MobileViT, RepVGG ...
    "timm.VisionTransformer": (("blocks[-1].norm1",), "tokens"),
    "timm.VisionTransformerDistilled": (("blocks[-1].norm1",), "tokens"),
    "timm.Eva": (("blocks[-1].norm1",), "tokens"),
    "timm.Deit": (("blocks[-1].norm1",), "tokens"),
    # pytorch-grad-cam's docs use layers[-1].blocks[-1].norm2 for Swin, which is inside the MLP
    # branch of the last block; the last spatial output before the pooling is the final norm.
    "timm.SwinTransformer": (("norm",), "channels_last"),
    "timm.ConvNeXt": (("stages[-1]",), "map"),
    "timm.MambaOut": (("stages[-1]",), "channels_last"),
    "timm.RegNet": (("final_conv", "s4"), "map"),
    "timm.DenseNet": (("features[-1]",), "map"),
}


def family(module: nn.Module) -> str:
    lib = "timm" if type(module).__module__.startswith("timm") else (
        "torchvision" if type(module).__module__.startswith("torchvision") else "other")
    return f"{lib}.{type(module).__name__}"


def recommended_layers(module: nn.Module) -> tuple[tuple[str, ...], str | None]:
    """Reference layer paths (qualified names) and expected layout for ``module``'s family."""
    paths, layout = FAMILIES.get(family(module), ((), None))
    names = []
    for p in paths:
        with contextlib.suppress(LookupError, AttributeError, TypeError, ValueError):
            names.append(qualified(module, p))
    return tuple(names), layout


def qualified(module: nn.Module, path: str) -> str:
    """``"layer4[-1]"`` -> ``"layer4.1"`` (the qualified name of the module the path points at)."""
    target = module
    for part in path.replace("]", "").replace("[", ".").split("."):
        if part.lstrip("-").isdigit():
            target = list(target.children())[int(part)]
        else:
            target = getattr(target, part)
            if not isinstance(target, nn.Module):
                raise AttributeError(path)
    for name, m in module.named_modules():
        if m is target:
            return name
    raise LookupError(path)


def small_swin() -> nn.Module:
    """timm's Swin-T code with fewer, narrower blocks (seeded random weights): the same windowed
    attention, shifted windows, patch merging and channels-last stages at a tenth of the cost.
    Loaded as ``helpers.sweep:small_swin`` (the ``package.module:factory`` model spec)."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, embed_dim=32,
                                 depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


# ---------------------------------------------------------------------------------------------
# The engine's view of layers (works with the current API and the one issue 11 introduces)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    layout: str | None
    shape: tuple[int, ...]
    grid: tuple[int, int] | None = None
    prefix: int = 0
    calls: int = 1


def engine_layers(engine) -> list[Layer]:
    out = []
    for la in engine.layers:
        layout = getattr(la, "layout", "missing")
        if layout == "missing":  # before issue 11: conv = map, linear = vector
            layout = "map" if len(la.shape) == 3 else "vector" if len(la.shape) == 1 else None
        grid = getattr(la, "grid", None)
        out.append(Layer(la.name, la.kind, layout, tuple(la.shape), tuple(grid) if grid else None,
                         int(getattr(la, "prefix", 0) or 0), int(getattr(la, "calls", 1))))
    return out


def default_layer(engine) -> str:
    from convscope.engine import ViewRequest

    got = getattr(engine, "default_layer", None)
    if got is None:  # before issue 11: the last conv
        return engine.resolve(ViewRequest(algorithms=("gradcam",))).cam_layer
    return getattr(got, "name", got)


def pick_layers(layers: list[Layer], default: str) -> dict[str, Layer]:
    """One layer per kind present: the last map-like one at or before the default layer, else the
    last map-like one, else the last one (a vector layout goes to the FC panel)."""
    order = {la.name: i for i, la in enumerate(layers)}
    cut = order.get(default, len(layers))
    picks = {}
    for kind in dict.fromkeys(la.kind for la in layers):
        pool = [la for la in layers if la.kind == kind and la.calls == 1]  # reused modules: not selectable
        maps = [la for la in pool if la.layout in MAP_LAYOUTS]
        early = [la for la in maps if order[la.name] <= cut]
        vectors = [la for la in pool if la.layout == "vector"]
        choice = (early or maps or vectors or [None])[-1]
        if choice is not None:
            picks[kind] = choice
    return picks


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------


def logits_of(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    return getattr(out, "logits", out)


@contextlib.contextmanager
def capture(module: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks storing each named module's output (the network goes on with a clone, so an
    in-place op after the module cannot change what is stored or the node its gradient is at)."""
    got: dict[str, torch.Tensor] = {}
    mods = dict(module.named_modules())
    handles = []

    def hook_for(name):
        def hook(_m, _i, out):
            if isinstance(out, torch.Tensor) and name not in got:
                got[name] = out
                return out.clone()
            return None

        return hook

    for n in dict.fromkeys(names):
        handles.append(mods[n].register_forward_hook(hook_for(n)))
    try:
        yield got
    finally:
        for h in handles:
            h.remove()


def to_map(t: torch.Tensor, layout: str, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """A layer output as B x C x h x w, reshaped by the reference's own rule for ``layout``."""
    if layout == "map":
        return t
    if layout == "channels_last":
        return t.permute(0, 3, 1, 2)
    if layout == "tokens":
        b, n, c = t.shape
        gh, gw = grid if grid else (math.isqrt(n),) * 2
        return t[:, n - gh * gw:].reshape(b, gh, gw, c).permute(0, 3, 1, 2)
    raise ValueError(f"no spatial map for layout {layout!r}")


def token_grid(module: nn.Module, n: int) -> tuple[int, int]:
    """The patch grid of a token layer from the model itself (timm / torchvision ViT), else a square."""
    pe = getattr(module, "patch_embed", None)
    g = getattr(pe, "grid_size", None)
    if g is not None and g[0] * g[1] <= n:
        return int(g[0]), int(g[1])
    s = math.isqrt(n)
    return s, s


def ref_layout(out: torch.Tensor, channels_last: bool = False) -> str | None:
    """The reference's own idea of a layer output's layout (from the shape, not from convscope):
    B x C, B x N x C tokens, B x C x h x w, or B x h x w x C (the sweep's inputs are square, so
    the two equal sizes are the grid; ``channels_last`` breaks a tie such as 7 x 7 x 7)."""
    if out.ndim == 4:
        _, a, b, c = out.shape
        if b == c and a != b:
            return "map"
        if a == b and b != c:
            return "channels_last"
        return "channels_last" if channels_last else "map"
    return {2: "vector", 3: "tokens"}.get(out.ndim)


def gradcam_refs(
    module: nn.Module, x: torch.Tensor, cls: int, names: list[str], channels_last: bool = False,
    extra: tuple[str, ...] = (),
) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """Written-out Grad-CAM at every layer in ``names``, from one forward and one backward; also
    the outputs of ``names`` and ``extra`` from that forward."""
    xg = x.clone().requires_grad_()
    with torch.enable_grad(), capture(module, [*names, *extra]) as got:
        score = logits_of(module(xg))[0, cls]
        present = [n for n in dict.fromkeys(names) if n in got]
        grads = torch.autograd.grad(score, [got[n] for n in present], allow_unused=True)
    out = {}
    for n, g in zip(present, grads, strict=True):
        a = got[n].detach()
        g = torch.zeros_like(a) if g is None else g
        layout = ref_layout(a, channels_last)
        if layout not in MAP_LAYOUTS:
            continue
        grid = token_grid(module, a.shape[1]) if layout == "tokens" else None
        am, gm = to_map(a, layout, grid), to_map(g, layout, grid)
        cam = (gm.mean(dim=(2, 3), keepdim=True) * am).sum(dim=1).clamp(min=0)
        out[n] = cam[0].double().numpy()
    return out, {n: t.detach() for n, t in got.items()}


class _GuidedClamp(torch.autograd.Function):
    """``clamp(x, 0, hi)`` with the guided backward ``relu(g) * (0 < x < hi)``."""

    @staticmethod
    def forward(ctx, x, hi):
        ctx.save_for_backward(x)
        ctx.hi = hi
        return x.clamp(0, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * ((x > 0) & (x < ctx.hi)), None


@contextlib.contextmanager
def guided_relus() -> Iterator[None]:
    """Every ReLU-like call (functional, method or module) runs the written-out guided Function."""
    relu = lambda x, *a, **k: GuidedReLU.apply(x)  # noqa: E731
    hardtanh = F.hardtanh

    def guided_hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
        if float(min_val) == 0.0:
            return GuidedReLU6.apply(x) if float(max_val) == 6.0 else _GuidedClamp.apply(x, float(max_val))
        return hardtanh(x, min_val, max_val, inplace)

    with contextlib.ExitStack() as stack:
        for owner, name, fn in [
            (F, "relu", relu), (F, "relu_", relu), (F, "relu6", lambda x, *a, **k: GuidedReLU6.apply(x)),
            (F, "hardtanh", guided_hardtanh), (F, "hardtanh_", guided_hardtanh),
            (torch, "relu", relu), (torch, "relu_", relu),
            (torch.Tensor, "relu", relu), (torch.Tensor, "relu_", relu),
        ]:
            stack.enter_context(mock.patch.object(owner, name, fn))
        yield


def guided_ref(module: nn.Module, x: torch.Tensor, cls: int) -> np.ndarray:
    xg = x.clone().requires_grad_()
    with torch.enable_grad(), guided_relus():
        (g,) = torch.autograd.grad(logits_of(module(xg))[0, cls], [xg])
    return g[0].double().numpy()


def pytorch_gradcam(module: nn.Module, x: torch.Tensor, cls: int, name: str, layout: str) -> np.ndarray:
    """pytorch-grad-cam's ``GradCAM`` (normalised, at the input size)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = dict(module.named_modules())[name]
    grid: list[tuple[int, int]] = []

    def reshape(t):
        if layout == "tokens":
            grid.append(token_grid(module, t.shape[1]))
        return to_map(t, layout, grid[-1] if grid else None)

    class Logits(nn.Module):  # pytorch-grad-cam wants a tensor out
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, t):
            return logits_of(self.m(t))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = GradCAM(model=Logits(module), target_layers=[layer],
                      reshape_transform=None if layout == "map" else reshape)
        cam.compute_input_gradient = True  # the module's parameters do not require grad
        try:
            out = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(cls)])
        finally:
            cam.activations_and_grads.release()
    return np.asarray(out[0], dtype=np.float64)


def same_values(a: torch.Tensor, b: torch.Tensor, channels_last: bool = False) -> bool:
    """The same tensor values, also when one is the other permuted between B x h x w x C and
    B x C x h x w (torchvision's Swin puts a ``Permute`` module after its final norm)."""
    if a.shape == b.shape:
        return torch.equal(a, b)
    if a.ndim == b.ndim == 4:
        la, lb = ref_layout(a, channels_last), ref_layout(b, channels_last)
        ma, mb = to_map(a, la), to_map(b, lb)
        return ma.shape == mb.shape and torch.equal(ma, mb)
    return False


def degenerate(a: np.ndarray) -> bool:
    """All zero, constant or non-finite: nothing to show, nothing to correlate."""
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        return True
    scale = np.abs(a).max()
    return scale == 0 or np.ptp(a) <= 1e-6 * scale


def pearson(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or degenerate(a) or degenerate(b):
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def upsample(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float64))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One engine run: which layers, what came out."""

    conv_layer: str | None
    cam_layer: str | None
    fc_layer: str | None
    kinds: tuple[str, ...]
    error: str | None = None
    gradcam_r: float | None = None
    gradcam_shape_ok: bool | None = None
    gradcam_ref_degenerate: bool | None = None
    empty: dict[str, str | None] = field(default_factory=dict)  # panel -> label (None: not empty)
    flat_unlabelled: list[str] = field(default_factory=list)  # panels with no spread and no label
    empty_missing: list[str] = field(default_factory=list)  # map panels whose MapOutput lacks .empty
    flat_truthful: list[str] = field(default_factory=list)  # flat, no field to label it, raw constant
    wrongly_empty: list[str] = field(default_factory=list)  # labelled empty, reference has structure
    seconds: float = 0.0


@dataclass(repr=False)
class ModelReport:
    model: str
    family: str = ""
    load_s: float = 0.0
    init_s: float = 0.0
    sweep_s: float = 0.0
    ref_s: float = 0.0
    default_layer: str | None = None
    layout: str | None = None
    grid: tuple[int, int] | None = None
    prefix: int | None = None
    references: tuple[str, ...] = ()
    ref_layout: str | None = None  # the family's layout (FAMILIES or the test's table)
    default_ref_layout: str | None = None  # the default layer's layout by the reference's own rule
    default_matches: str | None = None  # the reference layer whose output equals the default's
    gradcam_r: float | None = None
    gradcam_pgc_r: float | None = None  # against pytorch-grad-cam
    guided_r: float | None = None
    guided_ref_degenerate: bool | None = None
    guided_empty: str | None = None
    guided_vs_plain_r: float | None = None  # reference guided vs the engine's saliency (plain gradient)
    kinds: dict[str, str] = field(default_factory=dict)  # kind -> picked layer
    runs: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    optimization: str = ""
    cpu_s: float = 0.0  # process CPU time of the whole sweep of this model (steadier than wall time)

    def __repr__(self) -> str:
        return f"ModelReport({self.model}, default={self.default_layer}, errors={len(self.errors)})"

    @property
    def empty_panels(self) -> list[str]:
        return sorted({f"{p}@{r.cam_layer}" for r in self.runs for p, lab in r.empty.items() if lab})


def one_line(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame in convscope, if any."""
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in tb if "/convscope/" in f.filename.replace("\\", "/")]
    where = ours[-1] if ours else (tb[-1] if tb else None)
    loc = f" ({where.filename.split('/convscope/')[-1] if '/convscope/' in where.filename else where.filename}:{where.lineno})" if where else ""
    msg = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {msg}{loc}"


def _spread(img: np.ndarray | None) -> bool:
    return img is not None and int(img.max()) - int(img.min()) >= SPREAD_MIN


NO_FIELD = "<no .empty field>"


def _panels(result) -> list[tuple[str, np.ndarray | None, object, np.ndarray | None]]:
    """(panel, 8-bit image, empty label, raw data) for every panel of a result. The label is
    :data:`NO_FIELD` where the result has no field that could label the panel empty."""
    out: list[tuple[str, np.ndarray | None, object, np.ndarray | None]] = [("input", result.input, None, None)]
    acts = result.activations
    if acts is not None:
        out.append(("activations", acts.image, getattr(acts, "empty", NO_FIELD), acts.raw))
    if result.channel is not None:
        raw = acts.raw[result.channel_index] if acts is not None and acts.raw is not None else None
        out.append(("channel", result.channel, getattr(result, "channel_empty", NO_FIELD), raw))
    if result.fc is not None:
        out.append(("fc", result.fc.image, getattr(result.fc, "empty", NO_FIELD), result.fc.raw))
    for name, m in result.maps.items():
        out.append((f"map:{name}", m.image, getattr(m, "empty", NO_FIELD), m.raw))
    return out


def check_panels(run: Run, result) -> None:
    """Every panel has spread or is labelled empty. A map whose MapOutput has no ``empty`` field
    goes to ``run.empty_missing``; a flat activation / channel / FC panel with no field to label it
    is tolerated only when its raw data really is constant (``run.flat_truthful``)."""
    for panel, img, label, raw in _panels(result):
        if label == NO_FIELD:
            if panel.startswith("map:"):
                run.empty_missing.append(panel)
            if not _spread(img):
                if not panel.startswith("map:") and raw is not None and degenerate(raw):
                    run.flat_truthful.append(panel)
                else:
                    run.flat_unlabelled.append(panel)
        elif label:
            run.empty[panel] = str(label)
        elif not _spread(img):
            run.flat_unlabelled.append(panel)


def sweep_model(
    spec: str,
    image: np.ndarray,
    *,
    weights: str | None = None,
    input_size: int | None = None,
    pytorch_grad_cam: bool = False,
    bundle=None,
    references: tuple[tuple[str, ...], str] | None = None,
) -> ModelReport:
    """Load ``spec``, run the engine on ``image`` with its default request and one layer per kind,
    and compare with the references. Never raises for a model problem: see ``report.errors``.

    ``references``: (module paths, layout) of the default layer, instead of :data:`FAMILIES`.
    """

    rep = ModelReport(spec)
    cpu0 = time.process_time()
    try:
        return _sweep(rep, spec, image, weights, input_size, pytorch_grad_cam, bundle, references)
    finally:
        rep.cpu_s = time.process_time() - cpu0


def _sweep(rep, spec, image, weights, input_size, pytorch_grad_cam, bundle, references) -> ModelReport:
    from convscope.algorithms import get as get_algorithm
    from convscope.algorithms import names as algorithm_names
    from convscope.engine import Engine, Target, ViewRequest
    from convscope.models import load_model
    from convscope.views import defaults as default_panels
    from convscope.vocabulary import INPUT

    algos = algorithm_names()
    # every method runs on every model, with the fewest extra rows (the row methods' arithmetic is
    # checked against pytorch-grad-cam and captum in tests/algorithms; here: that they run anywhere)
    options = (("steps", 2), ("samples", 2), ("top_channels", 2))
    try:
        t = time.perf_counter()
        if bundle is None:
            w = weights or ("default" if spec == "efficientnet_lite0" else "random")
            bundle = load_model(spec, weights=w, input_size=input_size)
        rep.load_s = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        rep.errors.append(f"load: {one_line(exc)}")
        return rep
    module = bundle.module
    rep.family = family(module)
    if references is None:
        rep.references, rep.ref_layout = recommended_layers(module)
    else:
        rep.references = tuple(qualified(module, p) for p in references[0])
        rep.ref_layout = references[1]
    results: dict[int, object] = {}
    try:
        t = time.perf_counter()
        engine = Engine(bundle)
        rep.init_s = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001
        rep.errors.append(f"Engine(): {one_line(exc)}")
        return rep
    t = time.perf_counter()
    try:
        rep.optimization = engine.optimization
        layers = engine_layers(engine)
        by_name = {la.name: la for la in layers}
        try:
            rep.default_layer = default_layer(engine)
        except Exception as exc:  # noqa: BLE001
            rep.errors.append(f"default_layer: {one_line(exc)}")
        d = by_name.get(rep.default_layer or "")
        if d is not None:
            rep.layout, rep.grid, rep.prefix = d.layout, d.grid, d.prefix
        picks = pick_layers(layers, rep.default_layer or "")
        rep.kinds = {k: la.name for k, la in picks.items()}
        kinds_of: dict[str, list[str]] = {}
        for k, la in picks.items():
            kinds_of.setdefault(la.name, []).append(k)
        # run 0: the default request, every registered algorithm; then each picked layer not
        # already shown by run 0, with the algorithms whose backward stops at the layer (Grad-CAM,
        # Grad-CAM++): input-gradient maps cost a full backward and do not depend on the layer
        # (guided Grad-CAM is guided backprop times the layer's Grad-CAM), run 0 has them
        try:
            d_req = engine.resolve(ViewRequest(algorithms=algos, keep_raw=True, options=options))
            shown = {d_req.conv_layer, d_req.cam_layer, d_req.fc_layer}
        except Exception:  # noqa: BLE001 - run 0 reports it
            shown = set()
        maps = [n for n in dict.fromkeys(la.name for la in picks.values() if la.layout in MAP_LAYOUTS)
                if n not in shown]
        vecs = [n for n in dict.fromkeys(la.name for la in picks.values() if la.layout == "vector")
                if n not in shown]
        layer_algos = tuple(a for a in algos if get_algorithm(a).uses_layer and not any(
            g.wrt == INPUT for g in get_algorithm(a).needs(Target(), "layer").grads))
        plans: list[tuple[str | None, str | None, str | None]] = [(None, None, None)]
        for i in range(max(len(maps), len(vecs))):
            m = maps[i] if i < len(maps) else None
            plans.append((m, m, vecs[i] if i < len(vecs) else None))
        for i, (conv, cam, fc) in enumerate(plans):
            names = (conv, fc) if i else tuple(shown)
            run = Run(conv, cam, fc, tuple(k for n in names if n for k in kinds_of.get(n, [])))
            t0 = time.perf_counter()
            try:
                req = ViewRequest(conv_layer=conv, cam_layer=cam, fc_layer=fc,
                                  algorithms=algos if i == 0 else layer_algos,
                                  panels=default_panels(), keep_raw=True, neuron=0 if fc or i == 0 else None,
                                  options=options)
                resolved = engine.resolve(req)
                run.conv_layer, run.cam_layer, run.fc_layer = resolved.conv_layer, resolved.cam_layer, resolved.fc_layer
                res = engine.run(image, req)
                results[i] = res
                check_panels(run, res)
            except Exception as exc:  # noqa: BLE001
                run.error = one_line(exc)
            run.seconds = time.perf_counter() - t0
            rep.runs.append(run)
    finally:
        engine.close()
    rep.sweep_s = time.perf_counter() - t

    # ---- references on the user's module (engine closed: nothing of convscope is attached)
    base = results.get(0)
    if base is None:
        rep.errors.append("the default request failed: " + (rep.runs[0].error if rep.runs else "?"))
        return rep
    t = time.perf_counter()
    try:
        x = torch.from_numpy(np.ascontiguousarray(base.input_tensor)).float()
        gc = base.maps.get("gradcam")
        cls = gc.target.index if gc is not None else base.predictions[0].index
        mods = dict(module.named_modules())
        # Grad-CAM at every CAM layer the runs used (one forward, one backward), and in the same
        # forward the outputs of the default layer and its references
        cam_layers = [r.cam_layer for i, r in enumerate(rep.runs) if i in results and r.cam_layer in mods]
        extra = tuple(n for n in (rep.default_layer, *rep.references) if n in mods)
        refs, outs = gradcam_refs(module, x, cls, list(dict.fromkeys(cam_layers)),
                                  rep.ref_layout == "channels_last", extra)
        got = outs.get(rep.default_layer or "")
        if got is not None:
            rep.default_ref_layout = ref_layout(got, rep.ref_layout == "channels_last")
            cl = rep.ref_layout == "channels_last"
            for r in rep.references:  # the default layer outputs the same values as a reference?
                ref = outs.get(r)
                if ref is not None and same_values(got, ref, cl):
                    rep.default_matches = r
                    break
        for i, run in enumerate(rep.runs):
            res = results.get(i)
            if res is None or "gradcam" not in res.maps or run.cam_layer not in refs:
                continue
            ref, raw = refs[run.cam_layer], res.maps["gradcam"].raw
            run.gradcam_ref_degenerate = degenerate(ref)
            run.gradcam_shape_ok = raw is not None and tuple(raw.shape) == ref.shape
            run.gradcam_r = pearson(ref, raw) if run.gradcam_shape_ok else float("nan")
            label = getattr(res.maps["gradcam"], "empty", None)
            if label and not run.gradcam_ref_degenerate:
                run.wrongly_empty.append("map:gradcam")
        rep.gradcam_r = rep.runs[0].gradcam_r
        if pytorch_grad_cam and rep.default_layer in mods and gc is not None and gc.raw is not None:
            layout = rep.default_ref_layout if rep.default_ref_layout in MAP_LAYOUTS else "map"
            pgc = pytorch_gradcam(module, x, cls, rep.default_layer, layout)
            rep.gradcam_pgc_r = pearson(pgc, upsample(gc.raw, pgc.shape))
        # guided backprop of the class, default request
        gb = base.maps.get("guided_backprop")
        if gb is not None and gb.raw is not None:
            ref = guided_ref(module, x, gb.target.index if gb.target.index is not None else cls)
            rep.guided_ref_degenerate = degenerate(ref)
            rep.guided_r = pearson(ref, gb.raw)
            rep.guided_empty = getattr(gb, "empty", None)
            sal = base.maps.get("saliency")
            if sal is not None and sal.raw is not None:  # the plain input gradient
                rep.guided_vs_plain_r = pearson(ref, sal.raw)
    except Exception as exc:  # noqa: BLE001
        rep.errors.append(f"reference: {one_line(exc)}")
    rep.ref_s = time.perf_counter() - t
    for run in rep.runs:
        if run.error:
            rep.errors.append(f"run conv={run.conv_layer} cam={run.cam_layer} fc={run.fc_layer} "
                              f"[{','.join(run.kinds)}]: {run.error}")
    return rep


def fmt_r(r: float | None) -> str:
    if r is None:
        return "-"
    if isinstance(r, float) and math.isnan(r):
        return "nan"
    return f"{r:.4f}"
