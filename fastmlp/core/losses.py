"""Loss registry: names at the Python edge, integer codes inside the kernels.

Definitions (mean over the m rows of a batch):
  mse                   (1/m) sum_i 1/2 sum_k (a_ik - t_ik)^2
  binary_cross_entropy  -(1/m) sum_i sum_k [t log a + (1-t) log(1-a)], from the logits
  cross_entropy         -(1/m) sum_i sum_k t_ik log a_ik on a softmax output, via log-sum-exp
"""
from .activations import ACTIVATIONS, Names

MSE = 0
BINARY_CROSS_ENTROPY = 1
CROSS_ENTROPY = 2

LOSSES = {"mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
          "cross_entropy": CROSS_ENTROPY}
NAMES = {code: name for name, code in LOSSES.items()}

#: Output activation -> loss whose gradient w.r.t. the logits is exactly (A - T)/m.
CANONICAL = {"sigmoid": "binary_cross_entropy", "softmax": "cross_entropy",
             "identity": "mse"}
#: The same pairs as (loss code, activation code), for the kernels: for these the output
#: delta skips the chain rule through the activation.
CANONICAL_PAIRS = tuple((LOSSES[loss], ACTIVATIONS[activation])
                        for activation, loss in sorted(CANONICAL.items()))

#: Output activations each loss is defined on. BCE and CE are computed from the logits, so
#: they need the activation whose log they can take stably; MSE takes any output (every
#: record of activations.REGISTRY, read at each use).
VALID_OUTPUTS = {
    "mse": Names(lambda record: True),
    "binary_cross_entropy": frozenset({"sigmoid"}),
    "cross_entropy": frozenset({"softmax"}),
}


def default_loss(output_activation):
    """The canonical loss of an output activation (sigmoid->bce, softmax->ce, else mse)."""
    return CANONICAL.get(output_activation, "mse")


def loss_code(name, output_activation):
    """Integer code of a loss name, checked against the output activation."""
    if not isinstance(name, str):
        raise TypeError(f"loss must be a string, one of {sorted(LOSSES)} (or None for the "
                        f"canonical loss); got {type(name).__name__} {name!r}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(sorted(LOSSES))}")
    if output_activation not in VALID_OUTPUTS[name]:
        need = " or ".join(sorted(VALID_OUTPUTS[name]))
        raise ValueError(f"loss {name!r} needs a {need} output layer, but the output "
                         f"activation is {output_activation!r}; change the last layer's "
                         f"activation or use loss='mse'")
    return LOSSES[name]
