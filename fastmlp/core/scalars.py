"""Per-element activation and loss maths, written once for both twins.

These are @njit functions: the CPU kernels call them, and numba-cuda compiles them as device
functions where a @cuda.jit kernel calls them (core/mathfn.py's fast_* are math's there);
log_sum_exp, which takes an array, cuda/loss.py compiles from its Python source (`py_func`).
Each elementwise activation has one branch in `activate` and one in `activation_grad`,
whose derivative is written from the output a = g(z) (core/activations.py says why).

The CPU's hand-vectorised loops (cpu/dense.py) and the generated kernels' inline
expressions (cpu/codegen.py) repeat some of these formulas where a call would stop LLVM's
vectoriser; tests/cpu/test_specialize.py and tests/cpu/test_kernels.py check them against
the functions here.
"""
import math

from ..config import jit
from .activations import IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, STEP, TANH
from .losses import CANONICAL_PAIRS
from .mathfn import cast_like, fast_exp, fast_log1p, fast_tanh

#: The activation codes `activate` and `activation_grad` have branches for (softmax couples
#: a row: each twin writes it per row). Device code cannot raise, so the CUDA backend
#: refuses other codes before a launch, and cpu/codegen.py before it writes a kernel.
ELEMENTWISE_CODES = (IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, STEP)


@jit
def activate(v, activation):
    """activation(v) for one element, for every elementwise code (softmax is per row)."""
    zero, one = cast_like(v, 0.0), cast_like(v, 1.0)
    if activation == RELU:
        return v if v > zero else zero
    if activation == LEAKY_RELU:
        return v if v > zero else v * cast_like(v, LEAKY_SLOPE)
    if activation == SIGMOID:
        return one / (one + fast_exp(-v))
    if activation == TANH:
        return fast_tanh(v)
    if activation == STEP:
        return one if v > zero else zero
    if activation == IDENTITY:
        return v
    raise ValueError("core/scalars.activate: unknown activation code")


@jit
def activation_grad(d, a, activation):
    """d * activation'(z) for one element, written in a = activation(z): relu' = [a > 0],
    leaky' = 1 or slope by the sign of a (slope > 0 keeps the sign of z), sigmoid' = a(1-a),
    tanh' = 1 - a^2, step' = 0."""
    zero, one = cast_like(d, 0.0), cast_like(d, 1.0)
    if activation == RELU:
        return d if a > zero else zero
    if activation == LEAKY_RELU:
        return d if a > zero else d * cast_like(d, LEAKY_SLOPE)
    if activation == SIGMOID:
        return d * (a * (one - a))
    if activation == TANH:
        return d * (one - a * a)
    if activation == STEP:
        return zero
    if activation == IDENTITY:
        return d
    raise ValueError("core/scalars.activation_grad: unknown activation code")


@jit
def larger(v, top):
    """v if v > top else top: softmax's running maximum."""
    return v if v > top else top


@jit(inline="always")
def is_canonical(loss, activation):
    """True for the pairs of losses.CANONICAL_PAIRS, whose dL/dZ is (A - T)/m."""
    for pair in CANONICAL_PAIRS:
        if pair[0] == loss and pair[1] == activation:
            return True
    return False


# -- per-element loss terms (summed in float64 by the callers) ------------------------------
@jit(inline="always")
def squared_error_term(a, t):
    """1/2 (a - t)^2: one element of mse."""
    d = a - t
    return 0.5 * d * d


@jit(inline="always")
def binary_cross_entropy_term(z, t):
    """-[t log s(z) + (1-t) log(1-s(z))] from the logit z, as max(z, 0) - z t
    + log(1 + exp(-|z|)): finite where s(z) rounds to 0 or 1."""
    return max(z, 0.0) - z * t + fast_log1p(fast_exp(-abs(z)))


@jit
def log_sum_exp(logits, i):
    """log sum_j exp(logits[i, j]), shifted by the row's maximum so no exp overflows."""
    n = logits.shape[1]
    top = logits[i, 0]
    for j in range(1, n):
        top = max(top, logits[i, j])
    s = 0.0
    for j in range(n):
        s += math.exp(logits[i, j] - top)
    return top + math.log(s)


@jit
def cross_entropy_term(t, lse, z):
    """t * (lse - z): one element of -sum_k t_k log softmax(z)_k, with lse = log_sum_exp of
    the row; 0 where the target t is 0 (so 0 * inf adds nothing)."""
    return 0.0 if t == 0 else t * (lse - z)
