"""Compiled drivers: whole runs of minibatches, chunked inference, loss and gradients.

`train_steps` is the training loop itself: shuffling (Fisher-Yates over a row permutation),
gathering each batch (and its sample weights) into the preallocated batch buffers, the
learning rate of the schedule, forward, backward, the l2 term and the optimizer update all
run here, so Python is not in the per-batch loop.
"""
import math

import numpy as np

from ..config import jit
from ..core.optimizers import LR
from ..core.rng import shuffle
from ..core.schedules import advance, scheduled_lr
from ..core.spec import TABLE_COLUMNS
from ..core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from ..core.sample_weight import total_weight
from .network import (batch_loss, l2_backward, l2_forward, network_backward, network_forward,
                      output_loss)
from .loss import loss_backward, loss_forward
from .optim import adam_step, gradient_norms, optimizer_step, sgd_step
from .views import readonly, view2d


@jit(inline="always")
def gather_rows(out, src, perm, start, m):
    """out[:m] = src[perm[start:start+m]] row by row, into a preallocated buffer."""
    n = src.shape[1]
    for i in range(m):
        r = perm[start + i]
        for j in range(n):
            out[i, j] = src[r, j]


@jit(inline="always")
def gather_weights(out, weights, perm, start, m):
    """out[:m] = weights[perm[start:start+m]]; returns their sum (float64, in row order)."""
    total = 0.0
    for i in range(m):
        w = weights[perm[start + i]]
        out[i] = w
        total += w
    return total


@jit(inline="always")
def weigh_step(fit, config, start, m, lr, epoch, n):
    """The step's sample weights and their sum: (fit.wbatch[:m], m) when unweighted (an empty
    array, as fit.wbatch is then: one compiled signature either way). A weighted batch
    whose weights are all zero has nothing to learn from: it is skipped here (the cursor
    and the schedule's counters move past it, as past a step) and the sum returned is 0."""
    wb = fit.wbatch[:m]
    if not config.weighted:
        return wb, float(m)
    weight_sum = gather_weights(wb, fit.weights, fit.perm, start, m)
    if weight_sum == 0:
        move_cursor(fit.cursor, n, config.batch_size)
        advance(fit.schedule_state, lr, m, False, fit.cursor[0] != epoch)
    return wb, weight_sum


@jit(inline="always")
def next_batch(cursor, perm, rng, n, batch_size, shuffle_rows):
    """The start of a step: (first position in perm, rows in the batch). The first batch of
    an epoch reshuffles perm when shuffle_rows and the epoch has more than one batch (the
    order within one batch changes only the rounding of its sums); the last may be short."""
    b = cursor[1]
    if b == 0 and shuffle_rows and batch_size < n:
        shuffle(perm, rng)
    start = b * batch_size
    return start, min(batch_size, n - start)


@jit(inline="always")
def finish_step(cursor, epoch_loss, epoch_grad_norm, grad_norms, total_loss, m, n,
                batch_size):
    """The end of an applied step: add it to its epoch's statistics and move the cursor."""
    epoch = cursor[0]
    epoch_loss[epoch] += total_loss * m
    for l in range(grad_norms.shape[0]):
        epoch_grad_norm[epoch, l] += grad_norms[l]
    move_cursor(cursor, n, batch_size)


@jit(inline="always")
def end_step(fit, config, lr, total_loss, m, n, epoch):
    """The end of an applied step of `epoch`: its statistics, the cursor, the rate it was
    taken at (fit.epoch_lr) and the schedule's counters."""
    finish_step(fit.cursor, fit.epoch_loss, fit.epoch_grad_norm, fit.grad_norms, total_loss,
                m, n, config.batch_size)
    fit.epoch_lr[epoch] = lr
    advance(fit.schedule_state, lr, m, True, fit.cursor[0] != epoch)


@jit(inline="always")
def move_cursor(cursor, n, batch_size):
    """cursor = [epoch, batch] of the next step."""
    b = cursor[1] + 1
    if b == (n + batch_size - 1) // batch_size:
        cursor[0] += 1
        cursor[1] = 0
    else:
        cursor[1] = b


@jit
def train_steps(state, fit, x, targets, config, n_steps):
    """Run up to n_steps minibatch updates; returns (status, steps done) (status.py's codes).

    state, fit and config are the bundles of workspace.py (TrainState, FitState, StepConfig).
    fit.cursor = [epoch, batch within epoch] is advanced in place; each epoch starts with a
    fresh shuffle when config.shuffle. fit.epoch_loss[e] accumulates the per-row loss (l2 term
    included) summed over rows, fit.epoch_grad_norm[e, l] the per-batch norm of dW_l. A batch
    whose loss or gradient is not finite is not applied: training stops with the weights from
    before it. (Only an update that itself overflows the weights gets past this; the next
    step's loss shows it, and the caller restores the copy it made before the call.)
    The last batch of an epoch is the remainder and may be smaller than batch_size.

    With config.weighted the batch loss is the weighted mean sum(w l) / sum(w) of
    fit.weights gathered with the rows; a batch whose weights are all zero is skipped (it
    counts as a step, adds nothing and changes no parameter, moment or step count). With
    config.l2_per_sample the l2 coefficient of a batch is l2 / sum(w) (its rows when
    unweighted). Before each update fit.hyper[LR] becomes the schedule's rate
    (schedules.scheduled_lr); after it the schedule's counters advance and fit.epoch_lr
    records the rate.
    """
    s, c = state, config
    params, grads, layers, rows = s.params, s.grads, c.layers, c.rows
    n = x.shape[0]
    for step in range(n_steps):
        start, m = next_batch(fit.cursor, fit.perm, s.rng, n, c.batch_size, c.shuffle)
        xb = view2d(s.xbatch, 0, m, x.shape[1])
        tb = view2d(s.tbatch, 0, m, targets.shape[1])
        gather_rows(xb, x, fit.perm, start, m)
        gather_rows(tb, targets, fit.perm, start, m)
        # typed as the validated inputs are (read-only), so that the passes below compile
        # once for training and for evaluate_rows/gradient_rows
        xb, tb = readonly(xb), readonly(tb)
        epoch = fit.cursor[0]
        lr = scheduled_lr(c.schedule, fit.schedule_params, fit.schedule_state, c.hyper[LR])
        wb, weight_sum = weigh_step(fit, c, start, m, lr, epoch, n)
        if weight_sum == 0:  # nothing to learn from: skipped
            continue
        data_loss = batch_loss(s.acts, s.logits, s.deltas, xb, tb, params, layers, rows,
                               c.loss, wb) / weight_sum
        l2 = c.l2 / weight_sum if c.l2_per_sample else c.l2
        total_loss = data_loss + l2_forward(params, c.n_weights, l2)
        if not math.isfinite(params.dtype.type(total_loss)):  # in the model's precision
            return NONFINITE_LOSS, step  # nothing updated: the weights are from before it
        network_backward(grads, s.deltas, s.acts, xb, tb, params, layers, rows,
                         1.0 / weight_sum, c.loss, wb)
        if not gradient_norms(fit.grad_norms, grads, params, layers, l2):
            return NONFINITE_GRADIENT, step  # nothing updated either
        fit.hyper[LR] = lr
        optimizer_step(params, grads, s.moment1, s.moment2, s.opt_step, layers, c.optimizer,
                       fit.hyper, l2)
        end_step(fit, c, lr, total_loss, m, n, epoch)
    return OK, n_steps


def callee_examples(dtype):
    """Arrays of the types the training kernels pass the functions they call: a slice of
    the flat buffers, a block of rows, a read-only block (an input's rows, the targets) and
    the read-only layer table (StepConfig's)."""
    vector, rows = np.zeros(1, dtype), np.zeros((1, 1), dtype)
    read_only_rows, table = np.zeros((1, 1), dtype), np.zeros((1, TABLE_COLUMNS), np.int64)
    read_only_rows.flags.writeable = table.flags.writeable = False
    return vector, rows, read_only_rows, table


def loss_callees(dtype):
    """The loss's separately compiled functions, as both training kernels call them:
    loss_backward (reached last) first."""
    _, rows, read_only_rows, _ = callee_examples(dtype)
    return [(loss_backward, (rows, rows, read_only_rows, 0.0, 0, 0)),
            (loss_forward, (read_only_rows, rows, read_only_rows, 0))]


def separate_callees(dtype):
    """(dispatcher, arguments of the types train_steps passes) of the functions train_steps
    calls that numba compiles on their own, the last it reaches first: what cpu/ahead.py's
    helper compiles while the fit's own compile of train_steps works down from the top.
    (tests/test_fresh_processes.py checks them against what a cold fit compiles.)"""
    v, _, _, table = callee_examples(dtype)
    return [(adam_step, (v, v, v, v, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)),
            (sgd_step, (v, v, v, 0, 0, 0.0, 0.0, False, 0.0)),
            (gradient_norms, (np.zeros(1), v, v, table, 0.0))] + loss_callees(dtype)


@jit
def forward_rows(out, acts, logits, deltas, x, params, layers, rows):
    """out (n, n_outputs) = network output for every row of x, `rows` rows at a time: the
    parts of cpu/parallel.forward_parts (the backend's own inference calls evaluate_rows)."""
    n = x.shape[0]
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        result = network_forward(acts, logits, deltas, x[start:stop], params, layers, rows)
        # A loop, not out[start:stop] = result: numba compiles array-to-slice assignment
        # with a formatter for its shape-mismatch message, seconds of a cold compile.
        for i in range(stop - start):
            for j in range(result.shape[1]):
                out[start + i, j] = result[i, j]


@jit
def evaluate_rows(out, acts, logits, deltas, x, targets, params, layers, rows, loss,
                  n_weights, l2, weights, l2_per_sample):
    """One pass over every row of x, `rows` rows at a time, for inference and the loss alike
    (one compiled entry point, not two that each compile the whole forward chain).

    out: (n, n_outputs), filled with the network's outputs; or empty (0 rows) when they are
    not wanted. targets: (n, n_outputs), and the return value is then the mean loss over the
    rows as one batch plus the l2 term; or empty (0 rows, the return value 0.0). weights:
    float64, one per row, the mean then sum(w l) / sum(w); or empty for unweighted rows
    (network.UNWEIGHTED). With l2_per_sample the l2 coefficient is l2 / sum(w) (l2 / n
    unweighted)."""
    n = x.shape[0]
    keep_outputs = out.shape[0] != 0
    with_loss = targets.shape[0] != 0
    total = 0.0
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        result = network_forward(acts, logits, deltas, x[start:stop], params, layers, rows)
        if keep_outputs:
            # A loop, not out[start:stop] = result: numba compiles array-to-slice assignment
            # with a formatter for its shape-mismatch message, seconds of a cold compile.
            for i in range(stop - start):
                for j in range(result.shape[1]):
                    out[start + i, j] = result[i, j]
        if with_loss:
            # an empty array slices to an empty array: unweighted chunks stay unweighted
            total += output_loss(result, logits, targets[start:stop], loss,
                                 weights[start:stop])
    if not with_loss:
        return 0.0
    weight_sum = total_weight(weights) if weights.shape[0] != 0 else float(n)
    scale = l2 / weight_sum if l2_per_sample else l2
    return total / weight_sum + l2_forward(params, n_weights, scale)


@jit
def gradient_rows(grads, acts, logits, deltas, x, targets, params, layers, rows, loss,
                  n_weights, l2, weights, l2_per_sample):
    """grads = gradient of evaluate_rows' loss; x must fit the buffers in one batch (n <= rows)."""
    n = x.shape[0]
    weight_sum = total_weight(weights) if weights.shape[0] != 0 else float(n)
    batch_loss(acts, logits, deltas, x, targets, params, layers, rows, loss, weights)
    network_backward(grads, deltas, acts, x, targets, params, layers, rows, 1.0 / weight_sum,
                     loss, weights)
    l2_backward(grads, params, n_weights, l2 / weight_sum if l2_per_sample else l2)
