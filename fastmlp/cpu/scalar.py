"""Per-element forms of the activation loops in dense.py, for the generated kernels.

cpu/codegen.py writes a row's forward and backward as scalar code and calls these for
each unit. As calls, not inline conditionals, they keep numba's IR of a generated kernel
small (compile time grows with its basic blocks); LLVM inlines them afterwards and folds the
constant activation code. dense.py keeps the same formulas written into its loops, where they
vectorise better (a shared helper made the relu backward loop 3x slower);
tests/cpu/test_specialize.py checks the two against each other for every activation.
"""
from ..core.activations import IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, STEP, TANH
from ..config import jit
from .mathfn import cast_like, fast_exp, fast_tanh


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
    raise ValueError("cpu/scalar.activate: unknown activation code")


@jit
def activation_grad(d, a, activation):
    """d * activation'(z) for one element, in a = activation(z), as activation_backward."""
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
    raise ValueError("cpu/scalar.activation_grad: unknown activation code")


@jit
def larger(v, top):
    """v if v > top else top: softmax's running maximum."""
    return v if v > top else top


@jit
def cross_entropy_term(t, lse, z):
    """t * (lse - z), or 0 where the target t is 0 (so 0 * inf adds nothing)."""
    return 0.0 if t == 0 else t * (lse - z)
