"""Activation registry: names at the Python edge, integer codes inside the kernels."""

IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
SIGMOID = 3
TANH = 4
SOFTMAX = 5
STEP = 6

ACTIVATIONS = {
    "identity": IDENTITY,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "softmax": SOFTMAX,
    "step": STEP,
}
NAMES = {code: name for name, code in ACTIVATIONS.items()}

#: Negative-side slope of leaky_relu, as torch.nn.LeakyReLU's default.
LEAKY_SLOPE = 0.01

#: Activations allowed only on the output layer (softmax couples a whole row).
OUTPUT_ONLY = frozenset({"softmax"})
#: Activations with a zero derivative almost everywhere: inference only, `fit` refuses them.
INFERENCE_ONLY = frozenset({"step"})
#: Output activations whose outputs are class scores, so the model is a classifier.
CLASSIFIER_OUTPUTS = frozenset({"sigmoid", "softmax", "step"})


def activation_code(name):
    """Integer code of an activation name; a clear error for anything else."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, one of {sorted(ACTIVATIONS)}; "
                        f"got {type(name).__name__} {name!r}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of "
                         f"{', '.join(sorted(ACTIVATIONS))}") from None
