"""Optimizer kernels: one elementwise pass over the flat parameter buffers, the same math as
cpu/optim.py (torch.optim's rules), preceded in training by the step's verdict.

The verdict replaces the CPU loop's `if not finite: return`: every block of the optimizer
kernel sums the step's row losses and the per-tile sums of dW^2, W^2 and db^2 written by
dense_backward (a few hundred float64 values), decides whether the loss and the gradients
are finite, and updates only if they are. Block 0 records the outcome in `status` and the
epoch statistics, so nothing goes back to the host per step, and a failed step leaves the
parameters as they were, as on the CPU. Once status is set, later steps change nothing.
"""
import functools
import math

import numpy as np
from numba import cuda

from ..config import CUDA_CACHE
from ..cpu.optim import (ADAM, ADAMW, BETA1, BETA2, EPS, LR, MOMENTUM, N_HYPER, NESTEROV, SGD,
                         WEIGHT_DECAY)
from ..cpu.train import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from .elementwise import block_sum

# status[STATUS]: OK while every step so far was finite, else the code of the first failure
# (cpu/train.py's codes, NONFINITE_LOSS or NONFINITE_GRADIENT); status[STEPS_DONE]: steps
# applied.
STATUS, STEPS_DONE = 0, 1
# Columns of a tile_sums row.
GRAD_SQ, WEIGHT_SQ, BIAS_SQ = 0, 1, 2


@cuda.jit(device=True, cache=CUDA_CACHE)
def update_parameter(params, grads, moment1, moment2, i, hyper, optimizer, n_weights,
                     step_size, bias_correction2_sqrt):
    """Update params[i] in place; step_size = lr / (1 - beta1^t) and bias_correction2_sqrt =
    sqrt(1 - beta2^t) are computed on the host in float64, as cpu/optim.adam_step does."""
    g = grads[i]
    if optimizer == SGD:
        lr = hyper[LR]
        momentum = hyper[MOMENTUM]
        if momentum == 0:
            params[i] -= lr * g
        else:
            b = momentum * moment1[i] + g  # torch: buf = momentum*buf + g
            moment1[i] = b
            if hyper[NESTEROV] != 0:
                params[i] -= lr * (g + momentum * b)
            else:
                params[i] -= lr * b
        return
    if optimizer == ADAMW and i < n_weights:  # decoupled decay, weights only
        params[i] *= 1.0 - hyper[LR] * hyper[WEIGHT_DECAY]
    beta1 = hyper[BETA1]
    beta2 = hyper[BETA2]
    m = moment1[i]
    m += (1.0 - beta1) * (g - m)  # torch's exp_avg.lerp_(grad, 1 - beta1)
    v = beta2 * moment2[i] + (1.0 - beta2) * g * g
    moment1[i] = m
    moment2[i] = v
    params[i] -= step_size * m / (math.sqrt(v) / bias_correction2_sqrt + hyper[EPS])


@cuda.jit(device=True, cache=CUDA_CACHE)
def step_verdict(sums, status, epoch_stats, row_losses, tile_sums, layer_tiles, m, epoch, l2,
                 record, tid, n_threads):
    """True when the step's loss and gradients are finite; with record, also count the step
    and add its loss (l2 term included) times m and each ||dW_l|| to epoch_stats[epoch].

    sums is a shared (4, n_threads) float64 array; every thread of the block must call this
    and gets the same answer. tile_sums[l, t] holds dense_backward's (dW^2, W^2, db^2) for
    dW tile t < layer_tiles[l] of layer l.
    """
    n_layers = layer_tiles.shape[0]
    loss_sum = 0.0
    for i in range(tid, m, n_threads):
        loss_sum += row_losses[i]
    grad_sq = 0.0
    weight_sq = 0.0
    bias_sq = 0.0
    for l in range(n_layers):
        for t in range(tid, layer_tiles[l], n_threads):
            grad_sq += tile_sums[l, t, GRAD_SQ]
            weight_sq += tile_sums[l, t, WEIGHT_SQ]
            bias_sq += tile_sums[l, t, BIAS_SQ]
    sums[0, tid] = loss_sum
    sums[1, tid] = grad_sq
    sums[2, tid] = weight_sq
    sums[3, tid] = bias_sq
    block_sum(sums, tid, n_threads)
    total = sums[0, 0] / m
    if l2 != 0:
        total += 0.5 * l2 * sums[2, 0]
    code = OK
    if not math.isfinite(total):
        code = NONFINITE_LOSS
    elif not (math.isfinite(sums[1, 0]) and math.isfinite(sums[3, 0])):
        code = NONFINITE_GRADIENT
    cuda.syncthreads()  # everyone has read sums before it is reused below
    if record:
        if tid == 0:
            if code == OK:
                status[STEPS_DONE] += 1
                epoch_stats[epoch, 0] += total * m
            elif status[STATUS] == OK:
                status[STATUS] = code
        if code == OK:
            # ||dW_l|| per layer, for History.grad_norms.
            for l in range(n_layers):
                layer_sq = 0.0
                for t in range(tid, layer_tiles[l], n_threads):
                    layer_sq += tile_sums[l, t, GRAD_SQ]
                sums[0, tid] = layer_sq
                sums[1, tid] = 0.0
                sums[2, tid] = 0.0
                sums[3, tid] = 0.0
                block_sum(sums, tid, n_threads)
                if tid == 0:
                    epoch_stats[epoch, 1 + l] += math.sqrt(sums[0, 0])
                cuda.syncthreads()
    return code == OK


@functools.lru_cache(maxsize=None)
def kernels(n_threads):
    """(optimizer_step, update, sum_squares) kernels for blocks of n_threads threads."""

    @cuda.jit(cache=CUDA_CACHE)
    def optimizer_step(params, grads, moment1, moment2, status, epoch_stats, row_losses,
                       tile_sums, layer_tiles, hyper, optimizer, n_weights, l2, m, epoch,
                       step_size, bias_correction2_sqrt):
        """The training step's verdict, then (if finite) the update, grid-stride."""
        sums = cuda.shared.array((4, n_threads), epoch_stats.dtype)
        tid = cuda.threadIdx.x
        # If an earlier step failed, leave everything as it is. One thread reads status, so
        # that the whole block returns together even while block 0 is writing it.
        if tid == 0:
            sums[0, 0] = status[STATUS]
        cuda.syncthreads()
        if sums[0, 0] != OK:
            return
        cuda.syncthreads()  # all have read sums[0, 0] before the verdict reuses it
        ok = step_verdict(sums, status, epoch_stats, row_losses, tile_sums, layer_tiles, m,
                          epoch, l2, cuda.blockIdx.x == 0, tid, n_threads)
        if ok:
            for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
                update_parameter(params, grads, moment1, moment2, i, hyper, optimizer,
                                 n_weights, step_size, bias_correction2_sqrt)

    @cuda.jit(cache=CUDA_CACHE)
    def update(params, grads, moment1, moment2, hyper, optimizer, n_weights, step_size,
               bias_correction2_sqrt):
        """The update alone, unconditionally (for gradient checks and tests)."""
        for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
            update_parameter(params, grads, moment1, moment2, i, hyper, optimizer, n_weights,
                             step_size, bias_correction2_sqrt)

    @cuda.jit(cache=CUDA_CACHE)
    def sum_squares(out, values):
        """out[0] = sum of values^2 in float64, by one block (for the l2 term of a loss)."""
        sums = cuda.shared.array((1, n_threads), out.dtype)
        tid = cuda.threadIdx.x
        s = 0.0
        for i in range(tid, values.shape[0], n_threads):
            s += values[i] * values[i]
        sums[0, tid] = s
        block_sum(sums, tid, n_threads)
        if tid == 0:
            out[0] = sums[0, 0]

    return optimizer_step, update, sum_squares


def adam_scalars(hyper, optimizer, step):
    """(step_size, bias_correction2_sqrt) of update number `step` (1-based), in float64."""
    if optimizer not in (ADAM, ADAMW):
        return 0.0, 1.0
    bias_correction1 = 1.0 - hyper[BETA1] ** step
    return hyper[LR] / bias_correction1, math.sqrt(1.0 - hyper[BETA2] ** step)


# -- the CPU twins' signatures, for direct use and tests (training uses optimizer_step) --
def _update(params, grads, moment1, moment2, hyper, optimizer, n_weights, step):
    from .. import config
    from . import device
    threads = config.CUDA_THREADS
    step_size, correction = adam_scalars(hyper, optimizer, step)
    grid = max(1, min(config.CUDA_OPTIMIZER_BLOCKS, -(-params.shape[0] // threads)))
    kernels(threads)[1][grid, threads](params, grads, moment1, moment2, device.upload(hyper),
                                       optimizer, n_weights, step_size, correction)


def sgd_step(params, grads, velocity, lr, momentum, nesterov):
    """As cpu/optim.sgd_step, on device arrays."""
    hyper = np.zeros(N_HYPER)
    hyper[LR], hyper[MOMENTUM], hyper[NESTEROV] = lr, momentum, float(nesterov)
    _update(params, grads, velocity, velocity, hyper, SGD, 0, 0)


def adam_step(params, grads, moment1, moment2, lr, beta1, beta2, eps, weight_decay,
              n_weights, step):
    """As cpu/optim.adam_step, on device arrays (AdamW when weight_decay != 0)."""
    hyper = np.zeros(N_HYPER)
    hyper[LR], hyper[BETA1], hyper[BETA2], hyper[EPS] = lr, beta1, beta2, eps
    hyper[WEIGHT_DECAY] = weight_decay
    _update(params, grads, moment1, moment2, hyper, ADAMW if weight_decay else ADAM,
            n_weights, step)
