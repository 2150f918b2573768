"""Device functions shared by every CUDA kernel: activations and their derivatives, a block
reduction, and the small elementwise kernels (fill, gather, l2_backward).

Only device functions and kernels without compile-time sizes live here, so they are plain
module-level @cuda.jit functions.
"""
import math

from numba import cuda

from ..core.activations import (IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, SOFTMAX,
        STEP, TANH)
from ..config import CUDA_CACHE


@cuda.jit(device=True, cache=CUDA_CACHE)
def sigmoid(z):
    # Two branches so that exp never overflows, as cpu/dense.py.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


#: The activation codes `activate` and `derivative_from_output` (and loss.output_row, for
#: softmax) have branches for. Device code cannot raise, so cuda/backend.py refuses any other
#: code before the first launch: keep this tuple beside the branches it lists.
HANDLED_ACTIVATIONS = (IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, STEP, SOFTMAX)


@cuda.jit(device=True, cache=CUDA_CACHE)
def activate(z, activation):
    """g(z) for an elementwise activation code (softmax is row-wise: see loss.py)."""
    if activation == RELU:
        return z if z > 0 else z * 0
    if activation == LEAKY_RELU:
        return z if z > 0 else z * LEAKY_SLOPE
    if activation == SIGMOID:
        return sigmoid(z)
    if activation == TANH:
        return math.tanh(z)
    if activation == STEP:
        return 1.0 if z > 0 else 0.0
    return z


@cuda.jit(device=True, cache=CUDA_CACHE)
def derivative_from_output(a, activation):
    """g'(z) written in terms of a = g(z), as cpu/dense.activation_backward."""
    if activation == RELU:
        return 1.0 if a > 0 else 0.0
    if activation == LEAKY_RELU:
        return 1.0 if a > 0 else LEAKY_SLOPE
    if activation == SIGMOID:
        return a * (1 - a)
    if activation == TANH:
        return 1 - a * a
    if activation == STEP:
        return 0.0
    return 1.0


@cuda.jit(device=True, cache=CUDA_CACHE)
def block_sum(buf, tid, n_threads):
    """Sum buf[q, :n_threads] into buf[q, 0] for every row q, by a tree (deterministic order).

    Every thread of the block must call it; buf is a shared (rows, n_threads) array already
    filled, one column per thread.
    """
    half = 1
    while half < n_threads:
        half *= 2
    half //= 2
    cuda.syncthreads()
    while half > 0:
        if tid < half and tid + half < n_threads:
            for q in range(buf.shape[0]):
                buf[q, tid] += buf[q, tid + half]
        cuda.syncthreads()
        half //= 2


@cuda.jit(cache=CUDA_CACHE)
def fill_kernel(out, value):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = value


@cuda.jit(cache=CUDA_CACHE)
def gather_rows(xbatch, tbatch, x, targets, perm, start):
    """xbatch[i] = x[perm[start + i]] and tbatch[i] = targets[perm[start + i]] for the batch.

    One thread per element of the (m, n_inputs + n_outputs) pair of rows, so consecutive
    threads read consecutive addresses of a row.
    """
    m, n_in = xbatch.shape
    n_out = tbatch.shape[1]
    width = n_in + n_out
    idx = cuda.grid(1)
    if idx < m * width:
        i = idx // width
        j = idx - i * width
        row = perm[start + i]
        if j < n_in:
            xbatch[i, j] = x[row, j]
        else:
            tbatch[i, j - n_in] = targets[row, j - n_in]


@cuda.jit(cache=CUDA_CACHE)
def l2_backward_kernel(grads, params, n_weights, l2):
    """grads[:n_weights] += l2 * params[:n_weights], as cpu/network.l2_backward: the
    gradient of the l2 term, which model.gradients() reports (training adds it later)."""
    i = cuda.grid(1)
    if i < n_weights:
        grads[i] += l2 * params[i]
