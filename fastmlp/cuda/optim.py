"""Optimizer kernels: one elementwise pass over the flat parameter buffers, the same math as
cpu/optim.py (torch.optim's rules), preceded in training by the step's verdict.

As on the CPU, grads holds the data gradient alone; the l2 term joins it where it is used:
each weight is updated with grads + l2 * params (biases get no l2 term), and the norms are
those of dW + l2 W.

The verdict replaces the CPU loop's `if not finite: return`: every block of the optimizer
kernel sums the step's row losses and the per-tile sums of (dW + l2 W)^2, W^2 and db^2 by
dense_backward (a few hundred float64 values), decides whether the loss and the gradients
are finite, and updates only if they are. Block 0 records the outcome in `status` and the
epoch statistics, so nothing goes back to the host per step, and a failed step leaves the
parameters as they were, as on the CPU. Once status is set, later steps change nothing.
"""
import functools
import math
from typing import NamedTuple

import numpy as np
from numba import cuda, float64

from .. import config
from ..config import CUDA_CACHE
from ..core.optimizers import (ADAM_CODE as ADAM, ADAMW_CODE as ADAMW, BETA1, BETA2, EPS, LR,
        MOMENTUM, N_HYPER, NESTEROV, SGD_CODE as SGD, WEIGHT_DECAY)
from ..core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from ..core.spec import N_IN, N_OUT, W_OFFSET
from . import device
from .elementwise import block_sum

# status[STATUS]: OK while every step so far was finite, else the code of the first failure
# (status.py's codes, NONFINITE_LOSS or NONFINITE_GRADIENT); status[STEPS_DONE]: steps
# applied.
STATUS, STEPS_DONE = 0, 1
# Columns of a tile_sums row.
GRAD_SQ, WEIGHT_SQ, BIAS_SQ = 0, 1, 2


#: The optimizer codes update_parameter has branches for (anything not SGD is taken as Adam
#: there); cuda/backend.py refuses any other before the first launch.
HANDLED_OPTIMIZERS = (SGD, ADAM, ADAMW)


@cuda.jit(device=True, cache=CUDA_CACHE)
def update_parameter(params, grads, moment1, moment2, i, hyper, optimizer, n_weights, l2,
                     step_size, bias_correction2_sqrt):
    """scheduled_update at the optimizer's own rate hyper[LR]."""
    scheduled_update(params, grads, moment1, moment2, i, hyper, optimizer, n_weights, l2,
                     hyper[LR], step_size, bias_correction2_sqrt)


@cuda.jit(device=True, cache=CUDA_CACHE)
def scheduled_update(params, grads, moment1, moment2, i, hyper, optimizer, n_weights, l2,
                     lr, step_size, bias_correction2_sqrt):
    """Update params[i] in place with the gradient grads[i] + l2 * params[i] at rate lr
    (the schedule's, hyper[LR] without one); the l2 term and AdamW's decay reach
    i < n_weights only. step_size = lr / (1 - beta1^t) and bias_correction2_sqrt =
    sqrt(1 - beta2^t) are computed on the host in float64, as cpu/optim.adam_step does."""
    g = grads[i]
    if i < n_weights:  # l2 in the parameters' dtype, as cpu/optim; before AdamW's decay
        g += params.dtype.type(l2) * params[i]
    if optimizer == SGD:
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
        params[i] *= 1.0 - lr * hyper[WEIGHT_DECAY]
    beta1 = hyper[BETA1]
    beta2 = hyper[BETA2]
    m = moment1[i]
    m += (1.0 - beta1) * (g - m)  # torch's exp_avg.lerp_(grad, 1 - beta1)
    v = beta2 * moment2[i] + (1.0 - beta2) * g * g
    moment1[i] = m
    moment2[i] = v
    params[i] -= step_size * m / (math.sqrt(v) / bias_correction2_sqrt + hyper[EPS])


@cuda.jit(device=True, cache=CUDA_CACHE)
def segment_sum_squares(sums, grads, params, lo, hi, decay, tid, n_threads):
    """The sum over [lo, hi) of (grads + decay * params)^2, squares added in float64, by
    the whole block (every thread calls it and gets the sum). sums: shared (1, n_threads)."""
    s = 0.0
    for i in range(lo + tid, hi, n_threads):
        v = grads[i]
        if decay != 0:
            v += decay * params[i]
        v = float64(v)
        s += v * v
    sums[0, tid] = s
    block_sum(sums, tid, n_threads)
    total = sums[0, 0]
    cuda.syncthreads()  # every thread has read the sum before sums is reused
    return total


@cuda.jit(device=True, cache=CUDA_CACHE)
def step_verdict(sums, status, epoch_stats, row_losses, tile_sums, layer_tiles, params, m,
                 epoch, l2, record, tid, n_threads):
    """weighted_step_verdict of an unweighted batch (its weight sum is m)."""
    return weighted_step_verdict(sums, status, epoch_stats, row_losses, tile_sums,
                                 layer_tiles, params, m, m, epoch, l2, record, tid, n_threads)


@cuda.jit(device=True, cache=CUDA_CACHE)
def weighted_step_verdict(sums, status, epoch_stats, row_losses, tile_sums, layer_tiles,
                          params, m, weight_sum, epoch, l2, record, tid, n_threads):
    """True when the step's loss and gradients are finite; with record, also count the step
    and add its loss (l2 term included) times m and each ||dW_l + l2 W_l|| to
    epoch_stats[epoch].

    sums is a shared (4, n_threads) float64 array; every thread of the block must call this
    and gets the same answer. tile_sums[l, t] holds dense_backward's ((dW + l2 W)^2, W^2,
    db^2) for dW tile t < layer_tiles[l] of layer l, summed in float64, so a finite float32
    gradient whose square overflows float32 passes, as in cpu/optim.gradient_norms. The loss
    is judged in the model's precision (params' dtype), as in cpu/steps.train_steps. The
    step's loss is sum(row_losses[:m]) / weight_sum (the row losses of a weighted batch
    carry their weights) plus the l2 term.
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
    total = sums[0, 0] / weight_sum
    if l2 != 0:
        total += 0.5 * l2 * sums[2, 0]
    code = OK
    if not math.isfinite(params.dtype.type(total)):
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
            # ||dW_l + l2 W_l|| per layer, for History.grad_norms (as cpu gradient_norms).
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


class Kernels(NamedTuple):
    optimizer_step: object
    update: object
    sum_squares: object
    gradient_norms: object


@functools.lru_cache(maxsize=None)
def kernels(n_threads):
    """The Kernels of this module for blocks of n_threads threads."""

    @cuda.jit(cache=CUDA_CACHE)
    def optimizer_step(params, grads, moment1, moment2, status, epoch_stats, row_losses,
                       tile_sums, layer_tiles, hyper, optimizer, n_weights, m, l2, epoch,
                       lr, weight_sum, step_size, bias_correction2_sqrt):
        """The training step's verdict, then (if finite) the update at rate lr, grid-stride.
        weight_sum: the batch's weight sum (m unweighted); l2: this step's coefficient."""
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
        ok = weighted_step_verdict(sums, status, epoch_stats, row_losses, tile_sums,
                                   layer_tiles, params, m, weight_sum, epoch, l2,
                                   cuda.blockIdx.x == 0, tid, n_threads)
        if ok:
            for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
                scheduled_update(params, grads, moment1, moment2, i, hyper, optimizer,
                                 n_weights, l2, lr, step_size, bias_correction2_sqrt)

    @cuda.jit(cache=CUDA_CACHE)
    def update(params, grads, moment1, moment2, hyper, optimizer, n_weights, l2, step_size,
               bias_correction2_sqrt):
        """The update alone, unconditionally (sgd_step, adam_step, optimizer_step)."""
        for i in range(cuda.grid(1), params.shape[0], cuda.gridsize(1)):
            update_parameter(params, grads, moment1, moment2, i, hyper, optimizer, n_weights,
                             l2, step_size, bias_correction2_sqrt)

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

    @cuda.jit(cache=CUDA_CACHE)
    def gradient_norms(norms, finite, grads, params, layers, l2):
        """By one block, as cpu/optim.gradient_norms: norms[l] = ||dW_l + l2 W_l||, and
        finite[0] = 1 if every weight and bias gradient is finite, else 0."""
        sums = cuda.shared.array((1, n_threads), norms.dtype)
        tid = cuda.threadIdx.x
        decay = grads.dtype.type(l2)
        n_layers = layers.shape[0]
        ok = True
        for l in range(n_layers):
            lo = layers[l, W_OFFSET]
            hi = lo + layers[l, N_IN] * layers[l, N_OUT]
            sq = segment_sum_squares(sums, grads, params, lo, hi, decay, tid, n_threads)
            if tid == 0:
                norms[l] = math.sqrt(sq)
            ok = ok and math.isfinite(sq)
        last = n_layers - 1
        n_weights = layers[last, W_OFFSET] + layers[last, N_IN] * layers[last, N_OUT]
        sq = segment_sum_squares(sums, grads, params, n_weights, grads.shape[0], 0.0, tid,
                                 n_threads)  # the biases: no l2
        if tid == 0:
            finite[0] = 1 if ok and math.isfinite(sq) else 0

    return Kernels(optimizer_step, update, sum_squares, gradient_norms)


def adam_scalars(hyper, optimizer, step, lr=None):
    """(step_size, bias_correction2_sqrt) of update number `step` (1-based) at rate lr
    (hyper[LR] when None), in float64."""
    if optimizer not in (ADAM, ADAMW):
        return 0.0, 1.0
    bias_correction1 = 1.0 - hyper[BETA1] ** step
    lr = hyper[LR] if lr is None else lr
    return lr / bias_correction1, math.sqrt(1.0 - hyper[BETA2] ** step)


# -- the twins of cpu/optim.py: same names, arguments and results, on device arrays ------
# (the training step uses the optimizer_step kernel, which takes the verdict first). The
# buffers are device arrays; the layer table, hyper and opt_step are the host arrays the
# CPU kernels take (the step count stays on the host).
def _update(params, grads, moment1, moment2, hyper, optimizer, n_weights, l2, step):
    threads = config.CUDA_THREADS
    step_size, correction = adam_scalars(hyper, optimizer, step)
    grid = max(1, min(config.CUDA_OPTIMIZER_BLOCKS, -(-params.shape[0] // threads)))
    kernels(threads).update[grid, threads](params, grads, moment1, moment2,
                                           device.upload(hyper), optimizer, n_weights, l2,
                                           step_size, correction)


def _host(array):
    return array.copy_to_host() if hasattr(array, "copy_to_host") else np.asarray(array)


def sgd_step(params, grads, velocity, lo, hi, lr, momentum, nesterov, l2):
    """SGD on params[lo:hi] with gradient grads + l2 * params."""
    hyper = np.zeros(N_HYPER)
    hyper[LR], hyper[MOMENTUM], hyper[NESTEROV] = lr, momentum, float(nesterov)
    _update(params[lo:hi], grads[lo:hi], velocity[lo:hi], velocity[lo:hi], hyper, SGD,
            hi - lo, l2, 0)


def adam_step(params, grads, moment1, moment2, lo, hi, lr, beta1, beta2, eps, weight_decay,
              step, l2):
    """Adam, or AdamW when weight_decay != 0, on params[lo:hi] with gradient
    grads + l2 * params. step is the 1-based count of this update."""
    hyper = np.zeros(N_HYPER)
    hyper[LR], hyper[BETA1], hyper[BETA2], hyper[EPS] = lr, beta1, beta2, eps
    hyper[WEIGHT_DECAY] = weight_decay
    _update(params[lo:hi], grads[lo:hi], moment1[lo:hi], moment2[lo:hi], hyper,
            ADAMW if weight_decay != 0 else ADAM, hi - lo, l2, step)


def optimizer_step(params, grads, moment1, moment2, opt_step, layers, optimizer, hyper, l2):
    """One update of the flat buffers: params -= update(grads + l2 * weights); the l2 term
    and AdamW's decay reach each layer's weights, not the biases. opt_step[0] (a host array)
    counts the updates made."""
    opt_step[0] += 1
    layers = _host(layers)
    last = layers.shape[0] - 1
    n_weights = int(layers[last, W_OFFSET] + layers[last, N_IN] * layers[last, N_OUT])
    _update(params, grads, moment1, moment2, _host(hyper), optimizer, n_weights, l2,
            int(opt_step[0]))


def gradient_norms(norms, grads, params, layers, l2):
    """norms[l] = ||dW_l + l2 W_l|| (norms: a float64 device array), the gradient each
    layer's weights are updated with; returns False if any gradient (weights or biases) is
    NaN or infinite. Squares add up in float64, as on the CPU."""
    threads = config.CUDA_THREADS
    finite = device.zeros(1, np.int64)
    if not hasattr(layers, "copy_to_host"):
        layers = device.upload(layers)
    kernels(threads).gradient_norms[1, threads](norms, finite, grads, params, layers, l2)
    return bool(finite.copy_to_host()[0])
