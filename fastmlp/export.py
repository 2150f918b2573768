"""Models out to ONNX and PyTorch, and in from PyTorch, through the MLP's public API only.

Layer l computes ``A_l = g_l(A_{l-1} W_l + b_l)`` with W_l shaped (n_in, n_out). ONNX's Gemm
takes that W as is; torch.nn.Linear stores its transpose, (out_features, in_features).
"""
import json

import numpy as np

from .core.activations import REGISTRY, record
from .files import atomic_write

ONNX_OPSET = 17
#: IR version 8 is what opset 17 needs; older runtimes (onnxruntime >= 1.11) read it.
ONNX_IR_VERSION = 8
#: The operator / module of the identity activation: not emitted, since the Gemm or Linear
#: output already is the layer's output.
IDENTITY_OP = "Identity"


def _operators(model, field, target):
    """Each layer's activation record, once every one names its `field` (onnx_op or
    torch_module): a clear error for the first that has none."""
    records = []
    for l, (_, activation) in enumerate(model.layers):
        found = record(activation)
        if getattr(found, field) is None:
            hint = (" (an inference-only activation such as step can be replaced by sigmoid: "
                    "the same decisions at threshold 0.5 on the output)"
                    if found.inference_only else "")
            raise ValueError(f"layer {l} uses {activation!r}, which {target} cannot represent "
                             f"with a standard operator (its record in "
                             f"fastmlp/core/activations.py has no {field}); replace it before "
                             f"exporting{hint}")
        records.append(found)
    return records


# -- ONNX ------------------------------------------------------------------------------------

def onnx_graph(model):
    """The ModelProto of `model`: input "input" (batch, n_inputs), output "output"."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("exporting to ONNX needs the onnx package: "
                          "pip install 'fastmlp[onnx]'") from None
    records = _operators(model, "onnx_op", "ONNX")
    elem = TensorProto.FLOAT if model.dtype == np.float32 else TensorProto.DOUBLE
    nodes, initializers = [], []
    current = "input"
    for l, ((W, b), found) in enumerate(zip(model.get_weights(), records)):
        initializers += [numpy_helper.from_array(W, f"W{l}"), numpy_helper.from_array(b, f"b{l}")]
        z = f"z{l}"
        nodes.append(helper.make_node("Gemm", [current, f"W{l}", f"b{l}"], [z], name=f"gemm{l}"))
        current = z
        if found.onnx_op != IDENTITY_OP:
            a = f"a{l}"
            nodes.append(helper.make_node(found.onnx_op, [z], [a], name=f"{found.name}{l}",
                                          **dict(found.onnx_attributes)))
            current = a
    nodes.append(helper.make_node("Identity", [current], ["output"], name="output"))
    graph = helper.make_graph(
        nodes, "fastmlp_mlp",
        [helper.make_tensor_value_info("input", elem, ["batch", model.n_inputs])],
        [helper.make_tensor_value_info("output", elem, ["batch", model.layers[-1][0]])],
        initializers)
    proto = helper.make_model(graph, producer_name="fastmlp",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    proto.ir_version = ONNX_IR_VERSION
    props = {"loss": model.loss_name, "layers": repr([tuple(x) for x in model.layers])}
    if model.classes_ is not None:
        # the output's columns are probabilities of these labels, in this order (JSON)
        props["classes"] = json.dumps(np.asarray(model.classes_).tolist())
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    return proto


def to_onnx(model, path):
    """Write `model` as an ONNX file (Gemm + activation nodes; the output is forward()'s:
    probabilities for sigmoid/softmax outputs). Returns the path written."""
    proto = onnx_graph(model)
    return atomic_write(path, lambda f: f.write(proto.SerializeToString()))


# -- PyTorch ---------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("PyTorch is not installed: pip install torch (or "
                          "'fastmlp[reference]')") from None
    return torch


def _torch_module_class(nn, found):
    cls = getattr(nn, found.torch_module, None)
    if cls is None:
        raise ValueError(f"activation {found.name!r}: its record names torch.nn."
                         f"{found.torch_module}, which this PyTorch does not have")
    return cls


def to_torch(model):
    """A torch.nn.Sequential computing model.forward, in the model's dtype (Linear layers
    followed by their activations; identity layers have none)."""
    torch = _torch()
    records = _operators(model, "torch_module", "PyTorch")
    nn = torch.nn
    dtype = torch.float32 if model.dtype == np.float32 else torch.float64
    modules = []
    for (W, b), (size, _), found in zip(model.get_weights(), model.layers, records):
        linear = nn.Linear(W.shape[0], size, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b))
        modules.append(linear)
        if found.torch_module != IDENTITY_OP:
            modules.append(_torch_module_class(nn, found)(**dict(found.torch_arguments)))
    return nn.Sequential(*modules).eval()


def save_torch(model, path):
    """Write to_torch(model) as a torch.export program (load it with
    torch.export.load(path).module()); the batch dimension is dynamic."""
    torch = _torch()
    module = to_torch(model)
    dtype = next(module.parameters()).dtype
    example = torch.zeros((2, model.n_inputs), dtype=dtype)
    program = torch.export.export(module, (example,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    return atomic_write(path, lambda f: torch.export.save(program, f))


def _flatten(module, nn):
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _flatten(child, nn)]
    return [module]


def _torch_records():
    return [r for r in REGISTRY.values() if r.torch_module not in (None, IDENTITY_OP)]


def _activation_name(module, nn):
    """fastmlp's name for an activation module, or None if it is not one we support; the
    module's arguments must be the record's (a softmax over dim 1 of a 2-D input is the
    softmax over dim -1)."""
    for found in _torch_records():
        if not isinstance(module, _torch_module_class(nn, found)):
            continue
        kind = type(module).__name__
        for key, value in found.torch_arguments:
            actual = getattr(module, key)
            if key == "dim" and value == -1:
                if actual not in (-1, 1):
                    raise ValueError(f"{kind}(dim={actual}): only a {found.name} over the "
                                     f"features (dim=-1 or 1) matches fastmlp's")
            elif actual != value:
                raise ValueError(f"{kind} with {key}={actual}: fastmlp's {found.name} has "
                                 f"{key} {value} only")
        return found.name
    return None


def read_torch(module, mlp_kwargs):
    """(n_inputs, layers, weights, mlp_kwargs) of a torch.nn.Sequential (nested ones are
    flattened) of Linear layers, each followed by at most one ReLU, LeakyReLU(0.01),
    Sigmoid, Tanh or Softmax(dim=-1); nn.Identity is skipped. mlp_kwargs (for MLP: loss,
    optimizer, dtype, ...) come back with dtype defaulting to the Linear weights' dtype.
    MLP.from_torch builds the model."""
    torch = _torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Sequential; got {type(module).__name__}")
    for key in ("n_inputs", "layers"):
        if key in mlp_kwargs:
            raise TypeError(f"from_torch takes {key} from the module; do not pass it")
    supported = ", ".join(["Linear"] + [
        r.torch_module + (f"({', '.join(f'{k}={v}' for k, v in r.torch_arguments)})"
                          if r.torch_arguments else "") for r in _torch_records()]
        + [IDENTITY_OP])
    leaves = [m for m in _flatten(module, nn) if not isinstance(m, nn.Identity)]
    layers, weights = [], []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, nn.Linear):
            if weights and leaf.in_features != weights[-1][0].shape[1]:
                raise ValueError(f"Linear layer {len(weights)} takes {leaf.in_features} inputs "
                                 f"but the layer before it gives {weights[-1][0].shape[1]}")
            W = leaf.weight.detach().cpu().numpy().T
            b = (leaf.bias.detach().cpu().numpy() if leaf.bias is not None
                 else np.zeros(leaf.out_features, W.dtype))
            weights.append((W, b))
            layers.append([leaf.out_features, "identity"])
            continue
        name = _activation_name(leaf, nn)
        if name is None:
            raise ValueError(f"module {i} is {type(leaf).__name__}, which fastmlp cannot "
                             f"represent; supported: {supported}")
        if i == 0 or not isinstance(leaves[i - 1], nn.Linear):
            raise ValueError(f"module {i} ({type(leaf).__name__}) must follow a Linear layer "
                             f"directly: fastmlp layers are Linear + at most one activation")
        layers[-1][1] = name
    if not weights:
        raise ValueError(f"the module has no Linear layer; supported: {supported}")
    mlp_kwargs = dict(mlp_kwargs)
    if "dtype" not in mlp_kwargs:
        mlp_kwargs["dtype"] = "float64" if weights[0][0].dtype == np.float64 else "float32"
    return weights[0][0].shape[0], [tuple(x) for x in layers], weights, mlp_kwargs
