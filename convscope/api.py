"""One-call Python API for notebooks and scripts: :func:`explain` and :func:`live`.

``import convscope as cs`` stays cheap: this module (and torch with it) is imported the first time
``cs.explain`` or ``cs.live`` is looked up.

    ex = cs.explain("efficientnet_lite0", "cat.jpg", methods=["gradcam", "guided_backprop"])
    ex.predictions[0]          # Prediction(index=285, label='Egyptian cat', probability=0.77)
    ex.raw["gradcam"]          # the map before any normalisation (h x w at the layer)
    ex.images["gradcam"]       # the overlay at the photo's own size (HxWx3 uint8)
    ex.show(); ex.save("out/") # matplotlib figure; PNGs + predictions.json
    ex                         # in Jupyter: the labelled summary sheet (_repr_png_)

    dash = cs.live("efficientnet_lite0", "clip.mp4")   # the dashboard, inline in the notebook
    dash.selection; dash.snapshot(); dash.stop()
"""

from __future__ import annotations

import base64
import html
import io
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_METHODS = ("gradcam", "guided_backprop")


def _bundle(model: Any, device: str = "auto"):
    """A :class:`ModelBundle` from a name/path (loaded), a bundle (as is) or an ``nn.Module`` (wrapped)."""
    from torch import nn

    from convscope.models import ModelBundle, load_model

    if isinstance(model, ModelBundle):
        return model
    if isinstance(model, str | Path):
        return load_model(str(model), device=device)
    if isinstance(model, nn.Module):
        from convscope.models.bundle import Preprocessing
        from convscope.models.labels import labels_for
        from convscope.models.loader import _num_outputs

        prep = Preprocessing()
        param = next(model.parameters(), None)
        dev = param.device if param is not None else "cpu"
        model.eval()
        n = _num_outputs(model, prep)
        return ModelBundle(model, prep, labels_for(n) if n else (), type(model).__name__, dev, "module")
    raise TypeError(f"model must be a name, a path, a ModelBundle or a torch.nn.Module, not {type(model).__name__}")


def _frame(image: Any) -> np.ndarray:
    """An RGB uint8 HxWx3 array from a path, a PIL image or an array."""
    from convscope.stills.inputs import Unreadable, read_image

    if isinstance(image, str | Path):
        try:
            return read_image(image)
        except Unreadable as exc:
            from convscope.errors import InputError

            raise InputError(f"cannot read {image}: {exc}") from None
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


@dataclass
class Explanation:
    """What :func:`explain` found for one image.

    Attributes:
        model: the model's display name.
        image: the input as given (RGB uint8, its own size).
        predictions: the top-k, highest first.
        maps: the engine's :class:`~convscope.views.maps.MapOutput` per method (with ``raw``).
        images: each method's picture at the input's size (the overlay for CAMs).
        target: the class explained (``None`` when a channel or neuron was).
        labels: the model's class labels.
    """

    model: str
    image: np.ndarray
    predictions: list
    maps: dict
    images: dict[str, np.ndarray]
    target: int | None
    labels: tuple[str, ...] = field(repr=False, default=())

    @property
    def raw(self) -> dict[str, np.ndarray]:
        """Each method's map before any normalisation (as ``explain --save-raw`` writes it)."""
        return {name: out.raw for name, out in self.maps.items()}

    def _titles(self) -> dict[str, str]:
        from convscope import algorithms

        return {name: getattr(algorithms.get(name), "title", name) + (f" · {out.layer}" if out.layer else "")
                for name, out in self.maps.items()}

    def sheet(self) -> np.ndarray:
        """The labelled summary (input, top-k, every map) as an HxWx3 uint8 image, as summary.png."""
        from convscope.stills.sheet import Panel, contact_sheet, predictions_panel

        h, w = self.image.shape[:2]
        panels = [Panel(self.image, ("input", f"{w}x{h}")),
                  Panel(predictions_panel([(p.index, p.label, p.probability) for p in self.predictions]),
                        (f"top-{len(self.predictions)} predictions", self.model))]
        for name, title in self._titles().items():
            out = self.maps[name]
            panels.append(Panel(self.images[name], (title, f"rule: {out.rule}"), out.empty))
        return contact_sheet(self.model, panels)

    def show(self, figsize: tuple[float, float] | None = None):
        """Draw the input and every map side by side with matplotlib; returns the figure."""
        import matplotlib.pyplot as plt

        n = 1 + len(self.images)
        fig, axes = plt.subplots(1, n, figsize=figsize or (3.2 * n, 3.4), squeeze=False)
        top = self.predictions[0] if self.predictions else None
        axes[0, 0].imshow(self.image)
        axes[0, 0].set_title(f"{top.label} ({top.probability:.2f})" if top else "input", fontsize=9)
        for ax, (name, title) in zip(axes[0, 1:], self._titles().items(), strict=True):
            ax.imshow(self.images[name])
            ax.set_title(title, fontsize=9)
        for ax in axes[0]:
            ax.axis("off")
        fig.tight_layout()
        return fig

    def save(self, folder: str | Path, overwrite: bool = False) -> list[Path]:
        """Write ``{method}.png``, ``summary.png`` and ``predictions.json`` into ``folder``.

        Existing files are not replaced unless ``overwrite`` (an :class:`OutputError` says which).
        """
        from convscope.stills.outputs import Layout, ensure_dir, write_image, write_json

        base = ensure_dir(Path(folder).expanduser())
        layout = Layout(base, None, None, True, overwrite)
        written = [write_image(layout.claim(base / f"{name}.png"), img) for name, img in self.images.items()]
        written.append(write_image(layout.claim(base / "summary.png"), self.sheet()))
        written.append(write_json(layout.claim(base / "predictions.json"), {
            "model": self.model, "target": self.target,
            "predictions": [{"index": p.index, "label": p.label, "probability": float(p.probability)}
                            for p in self.predictions]}))
        return written

    def _repr_png_(self) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.sheet()).save(buf, format="PNG")
        return buf.getvalue()

    def _repr_html_(self) -> str:
        data = base64.b64encode(self._repr_png_()).decode("ascii")
        rows = "".join(f"<tr><td>{p.index}</td><td>{html.escape(p.label)}</td><td>{p.probability:.3f}</td></tr>"
                       for p in self.predictions)
        return (f'<div class="convscope-explanation"><img src="data:image/png;base64,{data}"/>'
                f"<table><tr><th>class</th><th>label</th><th>p</th></tr>{rows}</table></div>")


def explain(
    model: Any,
    image: Any,
    methods: Sequence[str] = DEFAULT_METHODS,
    target: int | None = None,
    *,
    layer: str | None = None,
    size: str = "input",
    colormap: str = "auto",
    gradients: str = "rgb",
    top_k: int = 5,
    device: str = "auto",
) -> Explanation:
    """Explain one image: predictions, raw maps and pictures at the image's own size.

    Args:
        model: a model name (``efficientnet_lite0``, ``resnet50``, ``timm:NAME``), a model file,
            a :class:`~convscope.models.ModelBundle` or a ``torch.nn.Module`` (ImageNet
            preprocessing at 224x224).
        image: a path, a PIL image or an RGB array (HxWx3).
        methods: algorithm names from the registry (``convscope explain --help`` lists them).
        target: the class to explain (default: the top-1 prediction).
        layer: the CAM layer (default: the one that feeds the head).
        size: ``input`` (the image's own size) or ``model`` (the network's input size).
        colormap: ``auto`` (one per kind of map) or a colormap name.
        gradients: input gradients as ``rgb`` or ``signed`` (diverging colormap).
        top_k: predictions to keep.
        device: ``auto``, ``cpu``, ``cuda`` ...
    """
    from convscope import algorithms
    from convscope.engine import Engine, Target, ViewRequest
    from convscope.errors import UsageError, suggest
    from convscope.stills.options import check_class
    from convscope.stills.present import Style, caption_of, still
    from convscope.stills.targets import describe_target, resolved_target

    names = tuple(str(m).replace("-", "_") for m in ([methods] if isinstance(methods, str) else methods))
    known = tuple(algorithms.names())
    for name in names:
        if name not in known:
            raise UsageError(f"unknown method {name!r}{suggest(name, known)}; known: {', '.join(known)}")
    bundle = _bundle(model, device)
    check_class(bundle, target)
    frame = _frame(image)
    style = Style(size=size, colormap=colormap, gradients=gradients)  # type: ignore[arg-type]
    engine = Engine(bundle, optimize=False)  # one image: folding the copy costs more than it saves
    try:
        from convscope.stills.options import conv_layer

        cam = conv_layer(engine.layers, layer, None)
        t = Target("class", target)
        request = ViewRequest(cam_layer=cam.name, algorithms=names, panels=("predictions",), top_k=top_k,
                              cam_target=t, selection_target=t, keep_raw=True)
        result = engine.run(frame, request)
    finally:
        engine.close()
    images = {}
    for name, out in result.maps.items():
        tgt = resolved_target(out, result)
        images[name] = still(out, frame, bundle.preprocessing, style,
                             caption_of(out, None, describe_target(tgt, bundle.labels)), result.input)
    explained = target if target is not None else (result.predictions[0].index if result.predictions else None)
    return Explanation(bundle.name, frame, result.predictions, dict(result.maps), images, explained, bundle.labels)


class LiveDashboard:
    """A dashboard serving in a background thread (:func:`live`).

    Attributes:
        url: the dashboard's address, token included.
    """

    def __init__(self, url: str, server, thread: threading.Thread, pipeline, engine, source, sock):
        self.url, self._server, self._thread = url, server, thread
        self._pipeline, self._engine, self._source, self._sock = pipeline, engine, source, sock

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def selection(self) -> dict:
        """What the dashboard shows now (layer, channel, class, algorithms ...), as every viewer sees it."""
        import dataclasses

        return dataclasses.asdict(self._pipeline.state)

    def snapshot(self):
        """The newest frame's :class:`~convscope.engine.Result` (predictions, maps, panels), or None
        before the first frame."""
        return getattr(self._pipeline, "last_result", None)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server, the engine thread and the source; close the engine."""
        self._server.should_exit = True
        self._thread.join(timeout)
        try:
            self._source.close()
        finally:
            self._engine.close()
            self._sock.close()

    def _repr_html_(self) -> str:
        return (f'<iframe src="{html.escape(self.url)}" width="100%" height="720" '
                f'style="border:1px solid #ccc"></iframe><div><a href="{html.escape(self.url)}" '
                f'target="_blank">{html.escape(self.url)}</a></div>')

    def __repr__(self) -> str:
        return f"<convscope dashboard at {self.url} ({'running' if self.running else 'stopped'})>"


def live(model: Any, source: Any = "demo", *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
         device: str = "auto", loop: bool | None = None, quality: int = 80, timeout: float = 30.0) -> LiveDashboard:
    """Start the live dashboard in a background thread and return a handle (shown inline in Jupyter).

    Args:
        model: as for :func:`explain`.
        source: ``demo``, a video file, a webcam index, a stream URL, an image or a folder.
        host, port: where to listen (port 0: any free port).
        token: the viewers' token (default: a random one, in ``url``).
        timeout: seconds to wait for the server to accept connections.
    """
    from convscope.cli.live import _bind, _urls
    from convscope.engine import Engine
    from convscope.server.app import create_app
    from convscope.server.dashboard import make_dashboard
    from convscope.server.lanes import background_engine_factory
    from convscope.server.limits import Limits, LiveServer, make_config
    from convscope.server.security import Guard, choose_token, is_loopback
    from convscope.sources import open_source

    bundle = _bundle(model, device)
    tok = choose_token(host, token, False)
    sock = _bind(host, port)
    engine = Engine(bundle)
    try:
        src = open_source(str(source), realtime=True, loop=loop)
    except BaseException:
        engine.close()
        sock.close()
        raise
    started = threading.Event()
    dash = make_dashboard(engine, src, Guard(tok, loopback_only=is_loopback(host)), quality=quality,
                          on_startup=started.set, background=background_engine_factory(bundle))
    limits = Limits()
    server = LiveServer(make_config(create_app(dash), limits), limits)
    bound, bound_port = sock.getsockname()[:2]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="convscope-live", daemon=True)
    thread.start()
    started.wait(timeout)
    return LiveDashboard(_urls(bound, bound_port, tok)[0], server, thread, dash.pipeline, engine, src, sock)


__all__ = ["Explanation", "LiveDashboard", "explain", "live"]
_ = json  # kept for callers that serialise predictions
