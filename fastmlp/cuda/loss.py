"""Loss kernels, one thread per row: each row's loss and the output delta dL/dZ.

loss_forward and loss_backward are the twins of cpu/loss.py (same names, arguments and
results, on device arrays). Their kernels write each row's loss to a float64 (rows,) buffer
that the optimizer's verdict (optim.py) or the host sums, in a fixed order.

The training step uses loss_forward_backward instead: the last layer's GEMM writes the
logits, and this one kernel applies the output activation (softmax needs the whole row,
which a GEMM tile does not hold), the loss and the delta, so a row's logits are read once.
"""
import math

import numpy as np
from numba import cuda

from ..core.activations import SOFTMAX
from .. import config
from ..config import CUDA_CACHE
from ..core.losses import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE
from ..core import scalars
from ..core.scalars import (activate, activation_grad, binary_cross_entropy_term,
                            cross_entropy_term, is_canonical, squared_error_term)
from . import device

# core/scalars.log_sum_exp's own Python source, compiled as a device function: it takes an
# array, which the simulator cannot hand to the CPU-compiled dispatcher.
log_sum_exp = cuda.jit(device=True, cache=CUDA_CACHE)(scalars.log_sum_exp.py_func)


@cuda.jit(device=True, cache=CUDA_CACHE)
def output_row(outputs, logits, i, activation):
    """outputs[i] = activation(logits[i]) (softmax: row-wise, max-shifted)."""
    n = logits.shape[1]
    if activation == SOFTMAX:
        top = logits[i, 0]
        for j in range(1, n):
            top = max(top, logits[i, j])
        total = 0.0
        for j in range(n):
            e = math.exp(logits[i, j] - top)
            outputs[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(n):
            outputs[i, j] *= inv
    else:
        for j in range(n):
            outputs[i, j] = activate(logits[i, j], activation)


#: The loss codes row_loss has branches for; cuda/backend.py refuses any other before the
#: first launch (device code cannot raise).
HANDLED_LOSSES = (MSE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY)


@cuda.jit(device=True, cache=CUDA_CACHE)
def row_loss(outputs, logits, targets, i, loss):
    """Loss of row i, as cpu/loss.loss_forward (BCE and CE from the logits, so they stay
    finite where the output has rounded to exactly 0 or 1)."""
    n = outputs.shape[1]
    total = 0.0
    if loss == MSE:
        for j in range(n):
            total += squared_error_term(outputs[i, j], targets[i, j])
    elif loss == BINARY_CROSS_ENTROPY:
        for j in range(n):
            total += binary_cross_entropy_term(logits[i, j], targets[i, j])
    elif loss == CROSS_ENTROPY:
        # -sum_k t_k log softmax(z)_k = sum_k t_k (logsumexp(z) - z_k)
        lse = log_sum_exp(logits, i)
        for j in range(n):
            total += cross_entropy_term(targets[i, j], lse, logits[i, j])
    return total


@cuda.jit(device=True, cache=CUDA_CACHE)
def delta_row(dlogits, outputs, targets, i, scale, loss, activation):
    """dlogits[i] = dL/dZ of row i for a loss averaged with weight scale (= 1/m)."""
    n = outputs.shape[1]
    # Canonical pairs (sigmoid+BCE, softmax+CE, identity+MSE): dL/dZ = (A - T)/m exactly.
    # Otherwise losses.VALID_OUTPUTS leaves only MSE: dL/dA = (A - T)/m, then the chain rule.
    for j in range(n):
        dlogits[i, j] = (outputs[i, j] - targets[i, j]) * scale
    if is_canonical(loss, activation):
        return
    if activation == SOFTMAX:
        # Softmax Jacobian-vector product: dz_j = a_j (g_j - sum_k g_k a_k).
        dot = 0.0
        for j in range(n):
            dot += dlogits[i, j] * outputs[i, j]
        for j in range(n):
            dlogits[i, j] = outputs[i, j] * (dlogits[i, j] - dot)
    else:
        for j in range(n):
            dlogits[i, j] = activation_grad(dlogits[i, j], outputs[i, j], activation)


@cuda.jit(cache=CUDA_CACHE)
def loss_forward_kernel(row_losses, outputs, logits, targets, loss):
    """row_losses[i] = loss of row i (float64), given the outputs and their logits."""
    i = cuda.grid(1)
    if i < logits.shape[0]:
        row_losses[i] = row_loss(outputs, logits, targets, i, loss)


@cuda.jit(cache=CUDA_CACHE)
def loss_backward_kernel(dlogits, outputs, targets, scale, loss, activation):
    """dlogits = dL/dZ of the output layer, given its outputs."""
    i = cuda.grid(1)
    if i < outputs.shape[0]:
        delta_row(dlogits, outputs, targets, i, scale, loss, activation)


@cuda.jit(cache=CUDA_CACHE)
def loss_forward_backward(dlogits, row_losses, outputs, logits, targets, scale, loss,
                          activation):
    """outputs = activation(logits), then loss_forward and loss_backward, in one pass over
    each row (the training step's)."""
    i = cuda.grid(1)
    if i < logits.shape[0]:
        output_row(outputs, logits, i, activation)
        row_losses[i] = row_loss(outputs, logits, targets, i, loss)
        delta_row(dlogits, outputs, targets, i, scale, loss, activation)


@cuda.jit(cache=CUDA_CACHE)
def weighted_loss_forward_backward(dlogits, row_losses, outputs, logits, targets, weights,
                                   perm, loss, activation, start, inv_weight_sum):
    """loss_forward_backward for the weighted mean sum(w l) / sum(w): row i's weight is
    weights[perm[start + i]] (gathered here, with no batch buffer), row_losses[i] = w * l_i
    (0 for w = 0, as cpu/loss.weighted_loss_forward) and the delta has scale
    w * inv_weight_sum, inv_weight_sum = 1 / sum(w) (cpu/loss.weighted_loss_backward scales
    after the chain rule instead of before: the same delta up to rounding)."""
    i = cuda.grid(1)
    if i < logits.shape[0]:
        w = weights[perm[start + i]]
        output_row(outputs, logits, i, activation)
        value = 0.0
        if w != 0:
            value = w * row_loss(outputs, logits, targets, i, loss)
        row_losses[i] = value
        delta_row(dlogits, outputs, targets, i, w * inv_weight_sum, loss, activation)


# -- the twins of cpu/loss.py: same names, arguments and results, on device arrays -------
def loss_forward(outputs, logits, targets, loss):
    """Sum over the rows of the per-row loss (a float; the caller divides by the rows)."""
    m = outputs.shape[0]
    row_losses = device.zeros(m, np.float64)
    threads = config.CUDA_THREADS
    loss_forward_kernel[-(-m // threads), threads](row_losses, outputs, logits, targets, loss)
    return float(np.sum(row_losses.copy_to_host()))


def loss_backward(dlogits, outputs, targets, scale, loss, activation):
    """dlogits = dL/dZ of the output layer for a loss averaged with weight scale (= 1/m)."""
    m = outputs.shape[0]
    threads = config.CUDA_THREADS
    loss_backward_kernel[-(-m // threads), threads](dlogits, outputs, targets, scale, loss,
                                                    activation)
