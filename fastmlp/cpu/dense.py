"""Dense layer kernels: activation_forward/backward and dense_forward/backward.

Arrays are 2-D C-contiguous views into the workspace's flat buffers, one row per sample.
Each kernel branches on the activation code once, outside its loops. Constants are cast to
the arrays' dtype (`dt(...)`), so float32 loops stay float32 and vectorise at full width.
The activation loops write core/scalars.py's formulas inline because a call there stops
LLVM's vectoriser (a shared helper made the relu backward loop 3x slower);
tests/cpu/test_kernels.py checks them against core/scalars.py bit for bit.
"""

from ..core.activations import (IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX,
        STEP, TANH)
from ..config import BLAS_MIN_MACS, BLAS_MIN_WIDTH, jit
from ..core.mathfn import fast_exp, fast_tanh
from .gemm import gemm_nn, gemm_nt, gemm_tn


@jit
def use_blas(m, n_in, n_out):
    """True when a (m, n_in) x (n_in, n_out) product is big enough to pay for a BLAS call."""
    return max(n_in, n_out) >= BLAS_MIN_WIDTH and m * n_in * n_out >= BLAS_MIN_MACS


@jit
def activation_forward(out, z, bias, activation):
    """The epilogue of a layer: z += bias, then out = activation(z), elementwise (row-wise
    for softmax), in one pass.

    out and z must not overlap: LLVM checks for overlap at run time and sends an aliased
    loop down its scalar path, which would cost the vectorisation these loops are for.
    """
    m, n = z.shape
    dt = out.dtype.type
    if activation == IDENTITY:
        for i in range(m):
            for j in range(n):
                v = z[i, j] + bias[j]
                z[i, j] = v
                out[i, j] = v
    elif activation == RELU:
        for i in range(m):
            for j in range(n):
                v = z[i, j] + bias[j]
                z[i, j] = v
                out[i, j] = v if v > 0 else dt(0)
    elif activation == LEAKY_RELU:
        slope = dt(LEAKY_SLOPE)
        for i in range(m):
            for j in range(n):
                v = z[i, j] + bias[j]
                z[i, j] = v
                out[i, j] = v if v > 0 else v * slope
    elif activation == SIGMOID:
        one = dt(1)
        for i in range(m):
            for j in range(n):
                v = z[i, j] + bias[j]
                z[i, j] = v
                out[i, j] = one / (one + fast_exp(-v))
    elif activation == TANH:
        for i in range(m):
            for j in range(n):
                v = z[i, j] + bias[j]
                z[i, j] = v
                out[i, j] = fast_tanh(v)
    elif activation == STEP:
        for i in range(m):
            for j in range(n):
                v = z[i, j] + bias[j]
                z[i, j] = v
                out[i, j] = dt(1) if v > 0 else dt(0)
    elif activation == SOFTMAX:
        for i in range(m):
            for j in range(n):
                z[i, j] += bias[j]
            top = z[i, 0]
            for j in range(1, n):
                v = z[i, j]
                top = v if v > top else top
            total = dt(0)
            for j in range(n):
                e = fast_exp(z[i, j] - top)
                out[i, j] = e
                total += e
            inv = dt(1) / total
            for j in range(n):
                out[i, j] *= inv
    else:  # an activation in activations.ACTIVATIONS without a branch here
        raise ValueError("cpu/dense.activation_forward: unknown activation code")


@jit
def activation_backward(delta, a, activation):
    """delta *= activation'(z), written in terms of a = activation(z) (elementwise codes),
    as core/scalars.activation_grad: the forward pass keeps only A (core/activations.py)."""
    m, n = delta.shape
    dt = delta.dtype.type
    if activation == RELU:
        for i in range(m):
            for j in range(n):
                delta[i, j] = delta[i, j] if a[i, j] > 0 else dt(0)
    elif activation == LEAKY_RELU:
        slope = dt(LEAKY_SLOPE)
        for i in range(m):
            for j in range(n):
                d = delta[i, j]
                delta[i, j] = d if a[i, j] > 0 else d * slope
    elif activation == SIGMOID:
        one = dt(1)
        for i in range(m):
            for j in range(n):
                v = a[i, j]
                delta[i, j] *= v * (one - v)
    elif activation == TANH:
        one = dt(1)
        for i in range(m):
            for j in range(n):
                v = a[i, j]
                delta[i, j] *= one - v * v
    elif activation == STEP:
        delta[:, :] = 0
    elif activation != IDENTITY:  # identity: derivative 1
        # SOFTMAX only ever sits on the output layer, whose delta loss_backward computes
        # with the full Jacobian; anything else is a code without a branch here.
        raise ValueError("cpu/dense.activation_backward: unknown activation code")


@jit(inline="always")
def matmul_forward(out, inp, weight):
    """out (m, n_out) = inp (m, n_in) @ weight (n_in, n_out): BLAS or hand-written loops."""
    m, n_in = inp.shape
    n_out = weight.shape[1]
    if use_blas(m, n_in, n_out):
        gemm_nn(out, inp, weight)  # out is a C-contiguous view that aliases neither input
    elif n_out == 1:
        # one output: a dot product per row (vectorises over k with reassociation)
        zero = out.dtype.type(0)
        for i in range(m):
            s = zero
            for k in range(n_in):
                s += inp[i, k] * weight[k, 0]
            out[i, 0] = s
    else:
        out[:, :] = 0
        for i in range(m):
            for k in range(n_in):
                x = inp[i, k]
                for j in range(n_out):
                    out[i, j] += x * weight[k, j]


@jit(inline="always")
def dense_forward(out, z, inp, weight, bias, activation):
    """One layer: z (m, n_out) = inp (m, n_in) @ weight + bias and out = activation(z), with
    bias and activation applied in one pass after the product.

    The output layer keeps z (the logits: BCE and CE are computed from them); a hidden layer
    passes its delta block as z, free until the backward pass.
    """
    matmul_forward(z, inp, weight)
    activation_forward(out, z, bias, activation)


@jit(inline="always")
def dense_backward(dinp, dweight, dbias, dout, inp, weight, inp_activation, need_dinp):
    """Backward of one layer given its delta dout = dL/dZ (m, n_out).

    dweight = inp^T dout, dbias = column sums of dout, and when need_dinp (every layer but
    the first) the previous layer's delta dinp = (dout weight^T) * g'(inp), where
    inp = g(Z_prev) is that layer's output and inp_activation its code.
    """
    m, n_in = inp.shape
    n_out = weight.shape[1]
    blas = use_blas(m, n_in, n_out)
    if blas:
        gemm_tn(dweight, inp, dout)
    else:
        dweight[:, :] = 0
        for i in range(m):
            for k in range(n_in):
                x = inp[i, k]
                for j in range(n_out):
                    dweight[k, j] += x * dout[i, j]
    dbias[:] = 0
    for i in range(m):
        for j in range(n_out):
            dbias[j] += dout[i, j]
    if need_dinp:
        if blas:
            gemm_nt(dinp, dout, weight)
        else:
            zero = dinp.dtype.type(0)
            for i in range(m):
                for k in range(n_in):
                    s = zero
                    for j in range(n_out):
                        s += dout[i, j] * weight[k, j]
                    dinp[i, k] = s
        activation_backward(dinp, inp, inp_activation)
