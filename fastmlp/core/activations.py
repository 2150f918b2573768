"""Activation registry: one record per activation, names at the Python edge, integer codes
inside the kernels.

Both backends keep only A = g(Z) per layer (a hidden layer's Z lives in its delta block,
which the backward pass overwrites), so an activation's derivative must be written from its
output: relu' = [a > 0], sigmoid' = a(1 - a), tanh' = 1 - a^2. GELU, SiLU, ELU or softplus,
whose derivatives are not functions of their outputs, would need Z kept first.

Every edge (export, init, the losses' valid outputs, the scikit-learn estimators) reads the
record; the kernels branch on its code (core/scalars.py, cpu/dense.py, cpu/codegen.py and the
CUDA twins): docs/architecture.md lists every site an activation touches.
"""
import collections.abc
from typing import NamedTuple


class Activation(NamedTuple):
    """What every part of the package needs to know about one activation.

    onnx_op / torch_module: the operator and torch.nn module that compute it (None: it has
    none, and export refuses it); their attributes / keyword arguments as (name, value)
    pairs. init: "he" or "glorot", the family init="auto" draws its layer's weights from.
    sklearn_name: its name for the scikit-learn estimators (None: not offered there).
    """
    name: str
    code: int
    onnx_op: str | None
    onnx_attributes: tuple
    torch_module: str | None
    torch_arguments: tuple
    init: str
    output_only: bool = False        # couples a whole row (softmax): last layer only
    inference_only: bool = False     # zero derivative almost everywhere: `fit` refuses it
    classifier_output: bool = False  # as the output layer, the model is a classifier
    sklearn_name: str | None = None


#: Negative-side slope of leaky_relu, as torch.nn.LeakyReLU's default.
LEAKY_SLOPE = 0.01

IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
SIGMOID = 3
TANH = 4
SOFTMAX = 5
STEP = 6

#: name -> record. Identity's ONNX Identity and torch Identity are not emitted: the Gemm or
#: Linear output already is the layer's output.
REGISTRY = {record.name: record for record in (
    Activation("identity", IDENTITY, "Identity", (), "Identity", (), "glorot",
               sklearn_name="identity"),
    Activation("relu", RELU, "Relu", (), "ReLU", (), "he", sklearn_name="relu"),
    Activation("leaky_relu", LEAKY_RELU, "LeakyRelu", (("alpha", LEAKY_SLOPE),), "LeakyReLU",
               (("negative_slope", LEAKY_SLOPE),), "he", sklearn_name="leaky_relu"),
    Activation("sigmoid", SIGMOID, "Sigmoid", (), "Sigmoid", (), "glorot",
               classifier_output=True, sklearn_name="logistic"),
    Activation("tanh", TANH, "Tanh", (), "Tanh", (), "glorot", sklearn_name="tanh"),
    Activation("softmax", SOFTMAX, "Softmax", (("axis", -1),), "Softmax", (("dim", -1),),
               "glorot", output_only=True, classifier_output=True, sklearn_name="softmax"),
    # no standard operator or module thresholds at 0 with outputs {0, 1}
    Activation("step", STEP, None, (), None, (), "glorot", inference_only=True,
               classifier_output=True),
)}


class Names(collections.abc.Set):
    """The names (key(record): fastmlp's by default) of the records that pass `keep`, read
    from REGISTRY at each use, so a record added later is seen everywhere."""

    def __init__(self, keep, key=lambda record: record.name):
        self._keep, self._key = keep, key

    def _names(self):
        return [self._key(record) for record in REGISTRY.values() if self._keep(record)]

    def __contains__(self, name):
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def __repr__(self):
        return f"{{{', '.join(map(repr, self))}}}"

    @classmethod
    def _from_iterable(cls, names):  # what set operations on a view return
        return frozenset(names)


class _Codes(collections.abc.Mapping):
    """name -> code, read from REGISTRY at each use."""

    def __getitem__(self, name):
        return REGISTRY[name].code

    def __iter__(self):
        return iter(REGISTRY)

    def __len__(self):
        return len(REGISTRY)


#: name -> integer code, and code -> name (live views of REGISTRY).
ACTIVATIONS = _Codes()


class _NamesByCode(collections.abc.Mapping):
    """code -> name, read from REGISTRY at each use."""

    def __getitem__(self, code):
        for record in REGISTRY.values():
            if record.code == code:
                return record.name
        raise KeyError(code)

    def __iter__(self):
        return (record.code for record in REGISTRY.values())

    def __len__(self):
        return len(REGISTRY)


NAMES = _NamesByCode()
#: Activations allowed only on the output layer (softmax couples a whole row).
OUTPUT_ONLY = Names(lambda record: record.output_only)
#: Activations with a zero derivative almost everywhere: inference only, `fit` refuses them.
INFERENCE_ONLY = Names(lambda record: record.inference_only)
#: Output activations whose outputs are class scores, so the model is a classifier.
CLASSIFIER_OUTPUTS = Names(lambda record: record.classifier_output)


def record(name):
    """The record of an activation name; a clear error for anything else."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, one of {sorted(REGISTRY)}; "
                        f"got {type(name).__name__} {name!r}")
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of "
                         f"{', '.join(sorted(REGISTRY))}") from None


def activation_code(name):
    """Integer code of an activation name; a clear error for anything else."""
    return record(name).code


def require(name, field, purpose):
    """The record's `field`, or a ValueError saying that `name` has none (so `purpose`, say
    "export to ONNX", cannot be done) and where to add it."""
    value = getattr(record(name), field)
    if value is None:
        raise ValueError(f"activation {name!r} has no {field} (its record in "
                         f"fastmlp/core/activations.py leaves it None), so fastmlp cannot "
                         f"{purpose}")
    return value


def sklearn_names(hidden):
    """scikit-learn's name -> fastmlp's, for the hidden layers (hidden=True: no output-only
    or inference-only activation) or for any layer."""
    return {r.sklearn_name: r.name for r in REGISTRY.values() if r.sklearn_name is not None
            and not (hidden and (r.output_only or r.inference_only))}


#: scikit-learn's names of the hidden-layer activations, read live (StrOptions checks
#: membership in it).
SKLEARN_HIDDEN = Names(lambda r: r.sklearn_name is not None and not r.output_only
                        and not r.inference_only, key=lambda r: r.sklearn_name)
