"""ONNX files to ``torch.fx.GraphModule`` through onnx2torch, made to work on today's exporters.

onnx2torch does the conversion: every ONNX node becomes a submodule named after the node (``.``
turned into ``/``), so Conv nodes are real ``nn.Conv2d`` modules that the engine can hook and
``convscope layers`` can list. What stops it on files that ``torch.onnx.export`` writes today is
fixed on the ONNX graph, with the ONNX library and onnx2torch's own converter registry rather than
with a hand-written interpreter (:func:`prepare`):

1. **Aliased initializers** (the ``KeyError: 'onnx::Conv_197'``). The TorchScript exporter
   (``dynamo=False``) de-duplicates initializers with equal values (BatchNorm folded into a conv
   gives every conv of a width the same all-zero bias under a fresh init; a trained model shares
   fewer) and keeps one copy, reaching the others through ``Identity`` nodes. onnx2torch's Conv
   converter looks its weight and bias up among the initializers only, so an ``Identity`` output
   is unknown to it. :func:`_resolve_initializer_aliases` points every consumer at the initializer
   itself and drops the ``Identity`` (the graph computes the same thing).
2. **Opsets newer than onnx2torch's** (``Identity`` 19, ``ReduceMean`` 18 with axes as an input,
   ``Constant`` 19 ...). ``onnx.version_converter.convert_version`` rewrites the graph to
   :data:`TARGET_OPSET` (or the lowest opset that has all its operators: ``Gelu`` exists from 20
   on). It is the ONNX project's own adapter set, so what it cannot move is reported, not guessed.
3. **Operator versions above 17 that onnx2torch lacks** (``Gelu`` 20, ``Identity`` 19/21,
   ``ReduceMean`` 18 ..., needed where a graph stays above 17) are added
   to onnx2torch's registry with its ``add_converter`` (:func:`_register_missing_converters`).
4. **Dynamo-exporter habits**: ``Reshape(allowzero=1)`` (refused by onnx2torch, needless for a
   constant shape without 0), Reshapes to the example's batch of 1 (they would break batches), and
   node names such as ``node_Conv_349``, renamed after the module from the exporter's metadata.
5. **Model-local functions**: ``onnx.inliner`` inlines them.

What still cannot be converted raises one :class:`~convscope.errors.ModelError` line naming the
operators, their domain and version, and how to re-export the file so that it loads.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

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
#: Operators whose second input is a module's weight (named ``<module path>.weight`` by torch).
_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


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


def _reshapes_follow_the_batch(model: onnx.ModelProto) -> int:
    """Let ``Reshape(x, [1, 512])`` after a batch-1 input keep the batch: ``[0, 512]`` (copy dim 0).

    Why: the dynamo exporter writes ``x.view(x.size(0), -1)`` / ``flatten`` as a Reshape to a
    constant shape that spells out the example's batch of 1, so the converted model fails on the
    batches that ``convscope explain`` (8 images) and the GPU engine (one row per map) run. In
    ONNX, a 0 in the shape (with ``allowzero=0``) copies that dimension from the input, which is
    the same 1 for the file's own input and the batch for any other. Only Reshapes whose input has
    a leading 1 by onnx's shape inference, in a graph whose input has batch 1, are changed.
    Returns how many were changed.
    """
    from onnx import numpy_helper, shape_inference

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or not inputs[0].type.tensor_type.shape.dim:
        return 0
    if inputs[0].type.tensor_type.shape.dim[0].dim_value != 1 or model.ByteSize() > 2**31 - 1:
        return 0
    try:
        inferred = shape_inference.infer_shapes(model).graph
    except Exception:  # an odd graph: leave it as it is
        return 0
    leading: dict[str, int] = {}
    for value in [*inferred.value_info, *inferred.input]:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            leading[value.name] = dims[0].dim_value
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.domain not in _STANDARD_DOMAINS or len(node.input) < 2:
            continue
        shape_init = initializers.get(node.input[1])
        if shape_init is None or leading.get(node.input[0]) != 1 or node.input[0] in initializers:
            continue
        shape = numpy_helper.to_array(shape_init)
        if shape.ndim != 1 or len(shape) < 2 or shape[0] != 1 or 0 in shape[1:]:
            continue
        fixed = shape.copy()
        fixed[0] = 0
        new = numpy_helper.from_array(fixed, name=f"{node.input[1]}__batch")
        if new.name not in initializers:
            graph.initializer.append(new)
            initializers[new.name] = new
        node.input[1] = new.name
        for attr in node.attribute:
            if attr.name == "allowzero":
                attr.i = 0
        changed += 1
    return changed


def _legacy_module_path(scopes: list[str]) -> str:
    """``['features', 'features.2', 'conv', 'conv.0', 'conv.0.0']`` -> ``features.2.conv.0.0``.

    The TorchScript exporter writes each scope as the module's name within the nearest named
    ancestor, so an element that extends the previous one (``conv.0`` after ``conv``) replaces it.
    """
    parts: list[str] = []
    for scope in scopes:
        if parts and scope.startswith(parts[-1] + "."):
            parts[-1] = scope
        else:
            parts.append(scope)
    return ".".join(parts)


def _name_nodes_after_modules(graph: onnx.GraphProto) -> int:
    """Name nodes after the torch module they came from, as torch spells it.

    Why: onnx2torch names each submodule after its node, and those names are what ``convscope
    layers`` lists and the dashboard's layer menu shows. Both torch exporters record the module:

    * dynamo: ``node_Conv_349`` becomes ``layer4.1.conv2/Conv`` after its weight initializer
      ``layer4.1.conv2.weight`` (its metadata ``pkg.torch.onnx.name_scopes`` names ``layer4.1.bn2``,
      the BatchNorm the exporter folded the conv into); other nodes take the module of their
      ``name_scopes`` (``['', 'layer4', 'layer4.1', 'layer4.1.relu', 'relu_15']``: ``layer4.1.relu/Relu``);
    * TorchScript: ``/features/features.2/conv/conv.0/conv.0.0/Conv`` becomes
      ``features.2.conv.0.0/Conv`` (onnx2torch would list it as ``features/features/2/conv/...``).

    onnx2torch then turns ``.`` into ``/`` (``layer4/1/conv2/Conv``) and makes repeated names
    unique. Other producers' names are kept. Returns how many nodes were renamed.
    """
    import ast

    initializers = {t.name for t in graph.initializer}
    renamed = 0
    for node in graph.node:
        if node.name.startswith("/") and node.name.count("/") >= 2:
            *scopes, op = node.name.strip("/").split("/")
            node.name = f"{_legacy_module_path(scopes)}/{op}"
            renamed += 1
            continue
        if not node.name.startswith("node_"):
            continue
        weight = node.input[1] if len(node.input) > 1 else ""
        if node.op_type in _WEIGHTED and weight in initializers and weight.endswith(".weight"):
            node.name = f"{weight.removesuffix('.weight')}/{node.op_type}"  # the conv's own parameter
            renamed += 1
            continue
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if scopes is None:
            continue
        try:
            path = ast.literal_eval(scopes)
        except (ValueError, SyntaxError):
            continue
        module = path[-2] if isinstance(path, list) and len(path) >= 2 and isinstance(path[-2], str) else ""
        node.name = f"{module}/{node.op_type}" if module else node.op_type
        renamed += 1
    return renamed


def _foreign_operator(model: onnx.ModelProto) -> onnx.NodeProto | None:
    """The first node outside the standard ONNX domain (custom ops: nothing can convert them)."""
    return next((n for n in model.graph.node if n.domain not in _STANDARD_DOMAINS), None)


def _gelu_converter(node, graph):  # noqa: ANN001, ARG001 (onnx2torch's converter signature)
    """ONNX ``Gelu`` (opset 20) is ``torch.nn.GELU``, exact or with the tanh approximation."""
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node
    from torch import nn

    approximate = node.attributes.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    return OperationConverterResult(torch_module=nn.GELU(approximate=approximate), onnx_mapping=onnx_mapping_from_node(node))


#: Reduce operators whose axes moved from an attribute to an input at opset 18 (Max/Min again at 20,
#: which only added bool inputs).
_REDUCE_AXES_INPUT = {
    **{op: (18,) for op in ("ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                            "ReduceLogSumExp", "ReduceSumSquare")},
    "ReduceMax": (18, 20),
    "ReduceMin": (18, 20),
}


#: (operator, version) -> the previous version, for versions that only added tensor types (float8,
#: int4, bfloat16, string; Cast 19 also a ``saturate`` flag that applies to float8 only). A graph
#: kept at opset 20 for its ``Gelu`` has these versions of its ordinary operators.
_TYPES_ONLY = {
    ("Identity", 19): 16,
    ("Identity", 21): 16,
    ("Reshape", 19): 14,
    ("Shape", 19): 15,
    ("Constant", 19): 13,
    ("Cast", 19): 13,
    ("Equal", 19): 13,
    ("ConstantOfShape", 20): 9,
}


def _reduce_converter(node, graph):  # noqa: ANN001 (onnx2torch's converter signature)
    """``Reduce*`` 18 with constant axes: onnx2torch's own module for the attribute form (version 13).

    A graph kept at opset 20 for its ``Gelu`` (the dynamo exporter's ConvNeXt) still has the
    ``ReduceMean`` 18 of its global pooling, with the axes as a constant input.
    """
    from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, get_const_value
    from torch import nn

    axes = None
    if len(node.input_values) > 1 and node.input_values[1]:
        try:
            axes = [int(a) for a in get_const_value(node.input_values[1], graph).tolist()]
        except KeyError:
            raise NotImplementedError(f"{node.operation_type} with axes computed at run time") from None
    if not axes and node.attributes.get("noop_with_empty_axes", 0):
        module = nn.Identity()
    else:
        module = OnnxReduceStaticAxes(
            operation_type=node.operation_type, axes=axes or None, keepdims=node.attributes.get("keepdims", 1)
        )
    mapping = OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values)
    return OperationConverterResult(torch_module=module, onnx_mapping=mapping)


@functools.cache
def _register_missing_converters() -> None:
    """Converters onnx2torch lacks, for operators that exist only after :data:`TARGET_OPSET`.

    A graph with such an operator cannot be brought down to opset 17 (``Gelu`` has no version
    before 20), so it is converted at the lowest opset that has all of its operators, and there a
    few operator versions are missing from onnx2torch's registry. They are added through the
    registry's own ``add_converter``, once per process:

    * versions that only widened the accepted types (:data:`_TYPES_ONLY`: float8, int4, string)
      take onnx2torch's converter of the previous version unchanged;
    * ``Gelu`` 20 is ``nn.GELU`` (the module torchvision's models use, so the engine treats it the
      same way on both routes);
    * ``Reduce*`` 18 (axes as an input) with constant axes is the attribute form onnx2torch has.
    """
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter

    def register(op: str, version: int, converter) -> None:  # noqa: ANN001
        if converter is not None and OperationDescription("", op, version) not in _CONVERTER_REGISTRY:
            add_converter(operation_type=op, version=version)(converter)

    for (op, version), older in _TYPES_ONLY.items():
        register(op, version, _CONVERTER_REGISTRY.get(OperationDescription("", op, older)))
    register("Gelu", 20, _gelu_converter)
    for op, versions in _REDUCE_AXES_INPUT.items():
        for version in versions:
            register(op, version, _reduce_converter)


def _first_opset(op_type: str, up_to: int) -> int | None:
    """The opset in which a default-domain operator first appears (None: no such ONNX operator)."""
    from onnx import defs

    try:
        version = defs.get_schema(op_type, up_to, "").since_version
    except defs.SchemaError:
        return None
    while version > 1:
        try:
            version = defs.get_schema(op_type, version - 1, "").since_version
        except defs.SchemaError:
            break
    return version


def _lowest_opset(model: onnx.ModelProto) -> int:
    """The lowest default-domain opset >= :data:`TARGET_OPSET` that has every operator of the graph.

    Why: onnx's version converter has no adapter to take an operator below its first version (it
    stops on ``No Previous Version of Gelu exists``), so a graph with ``Gelu`` stays at opset 20.
    """
    opset = _opset(model)
    firsts = (_first_opset(n.op_type, opset) for n in model.graph.node if n.domain in _STANDARD_DOMAINS)
    return max([TARGET_OPSET, *(v for v in firsts if v is not None)])


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
    _name_nodes_after_modules(model.graph)
    opset, target = _opset(model), _lowest_opset(model)
    if opset > target:
        try:
            model = onnx.version_converter.convert_version(model, target)
        except Exception as exc:
            raise ModelError(
                f"cannot convert ONNX model {origin}: onnx's version converter cannot bring opset {opset} "
                f"down to {target} ({_first_line(exc)}); {REEXPORT}"
            ) from None
        # the adapters may turn aliases back into Identity nodes of initializers
        _resolve_initializer_aliases(model.graph)
    _clear_needless_allowzero(model.graph)
    _reshapes_follow_the_batch(model)
    return model


def read(path: Path) -> onnx.ModelProto:
    """Load an ONNX file with its external data (``model.onnx.data``, as torch's exporter writes)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {path}: {_first_line(exc)}") from None
    try:
        try:
            onnx.checker.check_model(model)
        except ValueError:  # over 2 GB in memory: the checker reads it from disk instead
            onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path} is not a valid ONNX model: {_first_line(exc)}") from None
    return model


def _op_version(node: onnx.NodeProto, opset: int) -> int:
    """The operator's own version at ``opset`` (``GridSample`` at opset 17 is version 16)."""
    from onnx import defs

    try:
        return defs.get_schema(node.op_type, opset, node.domain).since_version
    except defs.SchemaError:
        return opset


def _missing_converters(model: onnx.ModelProto, origin: str, file_opset: int) -> None:
    """Name every operator of the graph onnx2torch has no converter for, in one line, before converting.

    Why before: onnx2torch stops at the first one with ``Converter is not implemented
    (OperationDescription(...))``; asking its registry (``get_converter``, the lookup ``convert``
    itself does) for each node names them all, with the node that uses each.
    """
    from onnx2torch.node_converters.registry import get_converter

    imports = {o.domain: o.version for o in model.opset_import}
    missing: dict[tuple[str, str, int], str] = {}
    for node in model.graph.node:
        version = imports.get(node.domain, imports.get("ai.onnx" if node.domain == "" else node.domain, 1))
        try:
            get_converter(domain=node.domain, operation_type=node.op_type, version=version)
        except NotImplementedError:
            missing.setdefault((node.domain or "ai.onnx", node.op_type, _op_version(node, version)), node.name or "?")
    if missing:
        what = ", ".join(
            f"{op} version {version} (domain {domain}, node {name})" for (domain, op, version), name in missing.items()
        )
        raise ModelError(
            f"cannot convert ONNX model {origin} (opset {file_opset}): onnx2torch has no converter for {what}; "
            f"{REEXPORT}, or save the model's state_dict and load it with -m ARCH --weights FILE"
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


def _static_input_shape(model: onnx.ModelProto) -> tuple[int, ...] | None:
    """The first graph input's shape when every dimension is fixed, else None."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs or not inputs[0].type.HasField("tensor_type"):
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return None
    return tuple(int(d.dim_value) for d in dims)


class BatchOfOne(nn.Module):
    """Passes its input through; a batch other than 1 raises a one-line ModelError instead.

    A node of the converted graph itself (not a hook, which ``GraphModule``'s deep copy drops), so
    the engine's copy of the model keeps it; a module-level class, so the model still pickles.
    """

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            raise ModelError(self.message)
        return x


def _guard_batch(module: fx.GraphModule, model: onnx.ModelProto, origin: str) -> bool:
    """Refuse batches > 1 when a batch-1 file's graph does not carry them correctly. Returns True if guarded.

    Why: onnx2torch does not check input shapes, and a graph exported for a batch of 1 can take a
    batch of 2 and silently answer wrong: the dynamo exporter writes torchvision ConvNeXt's
    ``flatten`` as ``Reshape(-1)`` + ``Gather`` of 768 fixed indices, so every row gets the first
    image's features. One probe finds out: a random batch of 2 must give, row for row, what each
    image gives alone. Files that pass (the TorchScript exporter's ``Flatten``, Reshapes fixed by
    :func:`_reshapes_follow_the_batch`) run any batch; the others raise a one-line ModelError on a
    batch > 1 instead of answering wrong (``convscope explain`` runs batches of 8).
    """

    shape = _static_input_shape(model)
    if shape is None or shape[0] != 1:
        return False
    x = torch.randn(2, *shape[1:], generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            together = module(x)
            alone = torch.cat([module(x[i : i + 1]) for i in range(2)])
        ok = together.shape == alone.shape and torch.allclose(together, alone, rtol=1e-3, atol=1e-5 * float(alone.abs().max()) + 1e-6)
        detail = "its graph mixes the images of a batch" if not ok else ""
    except Exception as exc:
        ok, detail = False, f"a batch of 2 fails: {_first_line(exc)}"
    if not ok:
        message = (
            f"ONNX model {origin} only works on one image at a time ({detail}): use --batch-size 1, or re-export "
            "it with a dynamic batch (torch.onnx.export(..., dynamo=False) or dynamic_shapes={'x': {0: 'batch'}})"
        )
        module.add_submodule("batch_guard", BatchOfOne(message))
        placeholder = next(n for n in module.graph.nodes if n.op == "placeholder")
        with module.graph.inserting_after(placeholder):
            guarded = module.graph.call_module("batch_guard", (placeholder,))
        placeholder.replace_all_uses_with(guarded, delete_user_cb=lambda user: user is not guarded)
        module.recompile()
    return not ok


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
    model = read(path)
    file_opset = _opset(model)
    model = prepare(model, str(path))
    _missing_converters(model, str(path), file_opset)
    try:
        module = convert(model)
    except Exception as exc:  # a converter that refuses an attribute or a dynamic input
        raise ModelError(f"cannot convert ONNX model {path}: {_first_line(exc)}; {REEXPORT}") from None
    module.eval()
    _guard_batch(module, model, str(path))
    return module, static_input_size(model)
