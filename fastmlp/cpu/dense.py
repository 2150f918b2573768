"""Dense layer kernels: activation_forward/backward and dense_forward/backward.

Arrays are 2-D C-contiguous views into the workspace's flat buffers, one row per sample.
Each kernel branches on the activation code once, outside its loops.
"""
import math

import numpy as np

from ..activations import IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX, STEP, TANH
from ..config import BLAS_MIN_WIDTH, jit


@jit
def sigmoid(z):
    # Two branches so that exp never overflows: exp(-z) for z >= 0, exp(z) otherwise.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@jit
def use_blas(m, n_in, n_out):
    """True when a (m, n_in) x (n_in, n_out) product is big enough to pay for a BLAS call."""
    return n_in >= BLAS_MIN_WIDTH and n_out >= BLAS_MIN_WIDTH and m >= 8


@jit
def activation_forward(out, z, activation):
    """out = activation(z), elementwise (row-wise for softmax). out may be z itself."""
    m, n = z.shape
    if activation == IDENTITY:
        if out is not z:
            out[:, :] = z
    elif activation == RELU:
        for i in range(m):
            for j in range(n):
                v = z[i, j]
                out[i, j] = v if v > 0 else 0
    elif activation == LEAKY_RELU:
        for i in range(m):
            for j in range(n):
                v = z[i, j]
                out[i, j] = v if v > 0 else v * LEAKY_SLOPE
    elif activation == SIGMOID:
        for i in range(m):
            for j in range(n):
                out[i, j] = sigmoid(z[i, j])
    elif activation == TANH:
        for i in range(m):
            for j in range(n):
                out[i, j] = math.tanh(z[i, j])
    elif activation == STEP:
        for i in range(m):
            for j in range(n):
                out[i, j] = 1 if z[i, j] > 0 else 0
    elif activation == SOFTMAX:
        for i in range(m):
            top = z[i, 0]
            for j in range(1, n):
                top = max(top, z[i, j])
            total = 0.0
            for j in range(n):
                e = math.exp(z[i, j] - top)
                out[i, j] = e
                total += e
            inv = 1.0 / total
            for j in range(n):
                out[i, j] *= inv


@jit
def activation_backward(delta, a, activation):
    """delta *= activation'(z), written in terms of a = activation(z) (elementwise codes).

    Every elementwise activation's derivative is a function of its output, so the forward
    pass keeps only A: relu' = [a > 0], leaky' = 1 or slope by the sign of a (slope > 0 keeps
    the sign of z), sigmoid' = a(1-a), tanh' = 1-a^2, step' = 0.
    """
    m, n = delta.shape
    if activation == RELU:
        for i in range(m):
            for j in range(n):
                if a[i, j] <= 0:
                    delta[i, j] = 0
    elif activation == LEAKY_RELU:
        for i in range(m):
            for j in range(n):
                if a[i, j] <= 0:
                    delta[i, j] *= LEAKY_SLOPE
    elif activation == SIGMOID:
        for i in range(m):
            for j in range(n):
                v = a[i, j]
                delta[i, j] *= v * (1 - v)
    elif activation == TANH:
        for i in range(m):
            for j in range(n):
                v = a[i, j]
                delta[i, j] *= 1 - v * v
    elif activation == STEP:
        delta[:, :] = 0
    # IDENTITY: derivative 1. SOFTMAX only ever sits on the output layer, whose delta
    # loss_backward computes with the full Jacobian.


@jit
def dense_forward(out, inp, weight, bias, activation):
    """out (m, n_out) = activation(inp (m, n_in) @ weight (n_in, n_out) + bias (n_out,))."""
    m, n_in = inp.shape
    n_out = weight.shape[1]
    if use_blas(m, n_in, n_out):
        np.dot(inp, weight, out)  # out is a C-contiguous view that aliases neither input
        for i in range(m):
            for j in range(n_out):
                out[i, j] += bias[j]
    else:
        for i in range(m):
            for j in range(n_out):
                out[i, j] = bias[j]
            for k in range(n_in):
                x = inp[i, k]
                for j in range(n_out):
                    out[i, j] += x * weight[k, j]
    activation_forward(out, out, activation)


@jit
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
        np.dot(inp.T, dout, dweight)
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
            np.dot(dout, weight.T, dinp)
        else:
            for i in range(m):
                for k in range(n_in):
                    s = 0.0
                    for j in range(n_out):
                        s += dout[i, j] * weight[k, j]
                    dinp[i, k] = s
        activation_backward(dinp, inp, inp_activation)
