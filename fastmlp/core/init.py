"""Weight initialisation schemes."""
import numpy as np

from .activations import require

INITS = ("auto", "he", "glorot", "pytorch", "zeros")


def check_init(init):
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    return init


def initialise(ws, init, rng):
    """Fill ws.params in place. auto: the family of each layer's activation record (He-uniform
    for relu and leaky_relu, Glorot-uniform otherwise); pytorch: U(-1/sqrt(n_in),
    1/sqrt(n_in)) for weights and biases, as nn.Linear."""
    for l, layer in enumerate(ws.spec.layers):
        W, b = ws.weights(l), ws.bias(l)
        scheme = init
        if init == "auto":
            scheme = require(layer.activation, "init", "draw its weights under init='auto'")
            if scheme not in ("he", "glorot"):
                raise ValueError(f"activation {layer.activation!r}: its record's init family "
                                 f"is {scheme!r}; init='auto' knows 'he' and 'glorot'")
        if scheme == "he":
            limit = np.sqrt(6.0 / layer.n_in)
        elif scheme == "glorot":
            limit = np.sqrt(6.0 / (layer.n_in + layer.n_out))
        elif scheme == "pytorch":
            limit = 1.0 / np.sqrt(layer.n_in)
        else:
            limit = 0.0
        W[:] = rng.uniform(-limit, limit, size=W.shape)
        b[:] = rng.uniform(-limit, limit, size=b.shape) if scheme == "pytorch" else 0.0
