"""ONNX files to ``torch.fx.GraphModule`` through onnx2torch, made to work on today's exporters.

onnx2torch does the conversion: every ONNX node becomes a submodule named after the node (``.``
turned into ``/``), so Conv nodes are real ``nn.Conv2d`` modules that the engine can hook and
``convscope layers`` can list. Three things stop it on files that ``torch.onnx.export`` writes
today, and each is fixed here with the ONNX library rather than with a hand-written interpreter:

1. **Aliased initializers** (the ``KeyError: 'onnx::Conv_197'``). The TorchScript exporter
   (``dynamo=False``) de-duplicates initializers with equal values (BatchNorm folded into a conv
   gives every conv of a width the same all-zero bias under a fresh init; a trained model shares
   fewer) and keeps one copy, reaching the others through ``Identity`` nodes. onnx2torch's Conv
   converter looks its weight and bias up among the initializers only, so an ``Identity`` output
   is unknown to it. :func:`_resolve_initializer_aliases` points every consumer at the initializer
   itself and drops the ``Identity`` (the graph computes the same thing).
2. **Opsets newer than onnx2torch's** (``Identity`` v19, ``ReduceMean`` v18 with axes as an input,
   ``Constant`` v19 ...). ``onnx.version_converter.convert_version`` rewrites the graph to
   :data:`TARGET_OPSET`, whose operator versions onnx2torch implements. It is the ONNX project's
   own adapter set, so an operator it cannot move is reported, not guessed at.
3. **Model-local functions** (exporters may wrap sub-graphs in them): ``onnx.inliner`` inlines them.

What still cannot be converted raises one :class:`~convscope.errors.ModelError` line naming the
operator, its domain and version, and how to re-export the file so that it loads.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from convscope.errors import ModelError

if TYPE_CHECKING:
    import onnx
    from torch import fx

#: The opset files are brought down to. onnx2torch implements LayerNormalization at 17 only (the op
#: first exists there), and every other operator a CNN uses at its 17 version; opset 17 is also the
#: newest that torch's TorchScript exporter and older tools write by default. Files at 17 or below
#: are converted as they are.
TARGET_OPSET = 17

#: What to tell a user whose file does not convert.
REEXPORT = "re-export with torch.onnx.export(model, x, 'model.onnx', opset_version=17, dynamo=False)"

_STANDARD_DOMAINS = ("", "ai.onnx")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _opset(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports (ONNX's rule: no entry means opset 1)."""
    return next((o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS), 1)


def _resolve_initializer_aliases(graph: onnx.GraphProto) -> int:
    """Replace ``Identity(initializer)`` outputs by the initializer's own name in every consumer.

    Why: onnx2torch reads Conv/Gemm weights from ``graph.initializer`` by name; the TorchScript
    exporter's de-duplication hides repeated ones behind ``Identity`` nodes. Graph outputs that are
    such aliases keep their ``Identity`` (an output name must be produced by a node). Subgraphs (If,
    Loop bodies) are left alone: CNN classifiers do not have them. Returns how many were resolved.
    """
    initializers = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    keep = []
    for node in graph.node:
        if (
            node.op_type == "Identity"
            and node.domain in _STANDARD_DOMAINS
            and len(node.input) == 1
            and node.input[0] in initializers | alias.keys()
            and node.output[0] not in outputs
        ):
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
        else:
            keep.append(node)
    if not alias:
        return 0
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)
    # value_info entries of removed names would describe values that no longer exist
    stale = [v for v in graph.value_info if v.name in alias]
    for v in stale:
        graph.value_info.remove(v)
    return len(alias)


def _clear_needless_allowzero(graph: onnx.GraphProto) -> int:
    """Set ``allowzero=0`` on Reshapes whose target shape is a constant without a 0.

    Why: the dynamo exporter writes ``Reshape(allowzero=1)`` (torch's ``view`` never copies a
    dimension from the input), and onnx2torch refuses ``allowzero=1``. The attribute only changes
    what a 0 in the shape means, so with no 0 in a constant shape both settings compute the same.
    Returns how many were changed.
    """
    from onnx import numpy_helper

    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _STANDARD_DOMAINS:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                constants[node.output[0]] = value
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.domain not in _STANDARD_DOMAINS or len(node.input) < 2:
            continue
        attr = next((a for a in node.attribute if a.name == "allowzero"), None)
        shape = constants.get(node.input[1])
        if attr is not None and attr.i == 1 and shape is not None and 0 not in numpy_helper.to_array(shape):
            attr.i = 0
            changed += 1
    return changed


def _foreign_operator(model: onnx.ModelProto) -> onnx.NodeProto | None:
    """The first node outside the standard ONNX domain (custom ops: nothing can convert them)."""
    return next((n for n in model.graph.node if n.domain not in _STANDARD_DOMAINS), None)


@functools.cache
def _register_missing_converters() -> None:
    """Converters onnx2torch lacks for operator versions the version converter leaves in place.

    Registered once per process through onnx2torch's own registry (``add_converter``). Kept to
    operators whose newer version changed nothing a CNN export uses, so the existing converter
    is reused as is.
    """
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter

    aliases = {
        # Identity 19/21/23 only widened the accepted types (float8, int4 ...).
        ("Identity", 19): ("Identity", 16),
        ("Identity", 21): ("Identity", 16),
        ("Identity", 23): ("Identity", 16),
    }
    for (op, version), (src_op, src_version) in aliases.items():
        if OperationDescription("", op, version) in _CONVERTER_REGISTRY:
            continue
        source = _CONVERTER_REGISTRY.get(OperationDescription("", src_op, src_version))
        if source is not None:
            add_converter(operation_type=op, version=version)(source)


def prepare(model: onnx.ModelProto, origin: str) -> onnx.ModelProto:
    """The graph-level fixes (see the module docstring), in place; returns the model.

    Raises:
        ModelError: for a custom-domain operator or an opset the version converter cannot lower.
    """
    import onnx
    import onnx.inliner
    import onnx.version_converter

    if len(model.functions):
        model = onnx.inliner.inline_local_functions(model)
    foreign = _foreign_operator(model)
    if foreign is not None:
        raise ModelError(
            f"cannot convert ONNX model {origin}: operator {foreign.op_type} of domain {foreign.domain!r} "
            f"(node {foreign.name or '?'}) is a custom operator that onnx2torch cannot convert; "
            "export the model with standard ONNX operators only"
        )
    _resolve_initializer_aliases(model.graph)
    opset = _opset(model)
    if opset > TARGET_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, TARGET_OPSET)
        except Exception as exc:
            raise ModelError(
                f"cannot convert ONNX model {origin}: onnx's version converter cannot bring opset {opset} "
                f"down to {TARGET_OPSET} ({_first_line(exc)}); {REEXPORT}"
            ) from None
        # the adapters may turn aliases back into Identity nodes of initializers
        _resolve_initializer_aliases(model.graph)
    _clear_needless_allowzero(model.graph)
    return model


def read(path: Path) -> onnx.ModelProto:
    """Load an ONNX file with its external data (``model.onnx.data``, as torch's exporter writes)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {path}: {_first_line(exc)}") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path} is not a valid ONNX model: {_first_line(exc)}") from None
    except ValueError:
        onnx.checker.check_model(str(path))  # over 2 GB: the checker reads it from disk
    return model


def _unsupported(exc: NotImplementedError, model: onnx.ModelProto, origin: str) -> ModelError:
    """One line naming the operator onnx2torch has no converter for, from its ``OperationDescription``."""
    text = _first_line(exc)
    return ModelError(
        f"cannot convert ONNX model {origin}: onnx2torch cannot convert {text.removeprefix('Converter is not implemented ')}"
        f" (file opset {_opset(model)}, converted at {min(_opset(model), TARGET_OPSET)}); {REEXPORT}, "
        "or export the model's state_dict and load it with -m ARCH --weights FILE"
    )


def static_input_size(model: onnx.ModelProto) -> tuple[int, int] | None:
    """(height, width) of the first graph input when the file fixes them (``N x C x H x W``)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs or not inputs[0].type.HasField("tensor_type"):
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[2:]):
        return None
    return int(dims[2].dim_value), int(dims[3].dim_value)


def load_onnx(path: Path) -> tuple[fx.GraphModule, tuple[int, int] | None]:
    """Read, fix and convert an ONNX file.

    Returns:
        The ``torch.fx.GraphModule`` in eval mode and the input (height, width) the file fixes, if any.
    """
    try:
        import onnx  # noqa: F401
        from onnx2torch import convert
    except ImportError:
        raise ModelError("ONNX models need onnx and onnx2torch: pip install 'convscope[onnx]'") from None
    _register_missing_converters()
    model = prepare(read(path), str(path))
    try:
        module = convert(model)
    except NotImplementedError as exc:
        raise _unsupported(exc, model, str(path)) from None
    except Exception as exc:
        raise ModelError(f"cannot convert ONNX model {path}: {_first_line(exc)}; {REEXPORT}") from None
    return module.eval(), static_input_size(model)
