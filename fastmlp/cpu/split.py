"""The compiled halves of a data-parallel training step, for fastmlp/distributed.py.

`steps.train_steps` runs a whole step in one compiled call. Data-parallel training must stop
in the middle of each step, after every rank has summed the gradient of its rows and before
the update, for one MPI Allreduce of those sums. So the step is cut in two around it:

  local_gradient_sums   where the step starts (shuffle at an epoch's first batch, as
                        train.next_batch does), gather this rank's share of the global
                        batch, forward and backward: `sums` = [gradient sums | loss sum | rows]
  (comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM), in Python: every rank's sums added up)
  apply_reduced_step    divide by the global row count, add the l2 term once, check that
                        loss and gradient are finite, take the norms, update, move the cursor

apply_and_begin_next runs the second half of one step and the first of the next in one call.

Every rank draws the same permutation from the same rng state (rank 0 broadcasts it first)
and takes the rows rank_rows gives it, so the ranks together cover each global batch exactly
once. The pieces are those of steps.train_steps (next_batch, gather_rows, batch_loss,
network_backward, gradient_norms, optimizer_step, finish_step): one step here computes what
one step there does, only the rows' sums are split across ranks, and the gradient is scaled
by 1/m after the sum instead of inside the output layer's delta (rounding differs in the last
bits).

`sums` is one allocation of n_params + 2 elements in the model's dtype: the first n_params
are the gradient (state.grads is a view of them, so backward writes straight into the buffer
that is reduced: no packing), then the loss sum and the row count, so one collective per step
carries all three. The row count is exact in float32 up to 2**24 rows (distributed.py refuses
larger batches); the loss sum is rounded to the model's precision, which only moves the
reported epoch loss in its last digits.
"""
import math

import numpy as np

from ..config import jit
from ..core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from .network import batch_loss, l2_forward, network_backward
from .optim import gradient_norms, optimizer_step
from .steps import finish_step, gather_rows, next_batch
from .views import readonly, view2d


@jit
def rank_rows(m, rank, size):
    """[lo, hi): the rows of an m-row batch that `rank` of `size` takes. Shares differ by at
    most one row; with fewer rows than ranks, some ranks take none."""
    return m * rank // size, m * (rank + 1) // size


@jit
def local_gradient_sums(state, fit, x, targets, config, rank, size, sums):
    """Begin the step at fit.cursor on this rank's share of the global batch.

    state.grads must be sums[:n_params]. Afterwards sums[:n_params] holds the gradient of the
    data loss summed (not averaged) over this rank's rows, sums[n_params] their loss sum and
    sums[n_params + 1] their number. The cursor does not move (apply_reduced_step moves it)."""
    s, c = state, config
    n = x.shape[0]
    n_params = s.params.shape[0]
    start, m = next_batch(fit.cursor, fit.perm, s.rng, n, c.batch_size, c.shuffle)
    lo, hi = rank_rows(m, rank, size)
    k = hi - lo
    if k == 0:  # fewer rows than ranks: this rank adds nothing
        sums[:] = 0
        return
    xb = view2d(s.xbatch, 0, k, x.shape[1])
    tb = view2d(s.tbatch, 0, k, targets.shape[1])
    gather_rows(xb, x, fit.perm, start + lo, k)
    gather_rows(tb, targets, fit.perm, start + lo, k)
    xb, tb = readonly(xb), readonly(tb)  # as in steps.train_steps: one compile of the passes
    unweighted = fit.wbatch[:0]  # empty: the data-parallel step takes no sample weights
    loss_sum = batch_loss(s.acts, s.logits, s.deltas, xb, tb, s.params, c.layers, c.rows,
                          c.loss, unweighted)
    # scale 1: sums; a non-finite loss still goes through backward and the reduction, so
    # that every rank reaches the same verdict after it.
    network_backward(s.grads, s.deltas, s.acts, xb, tb, s.params, c.layers, c.rows, 1.0,
                     c.loss, unweighted)
    sums[n_params] = loss_sum
    sums[n_params + 1] = k


@jit
def apply_reduced_step(state, fit, config, sums, n):
    """Finish the step from every rank's summed `sums`; returns a status.py code.

    As in steps.train_steps, a non-finite loss or gradient changes nothing: the weights stay
    those from before the step, and the cursor stays on it. Every rank holds the same reduced
    sums, so every rank returns the same code and makes the same update."""
    s, c = state, config
    params, grads = s.params, s.grads
    n_params = params.shape[0]
    dt = params.dtype.type
    m = sums[n_params + 1]
    scale = dt(1.0 / m)
    for i in range(n_params):
        grads[i] *= scale
    total_loss = sums[n_params] / m + l2_forward(params, c.n_weights, c.l2)
    if not math.isfinite(dt(total_loss)):  # in the model's precision, as train_steps
        return NONFINITE_LOSS
    if not gradient_norms(fit.grad_norms, grads, params, c.layers, c.l2):
        return NONFINITE_GRADIENT
    optimizer_step(params, grads, s.moment1, s.moment2, s.opt_step, c.layers, c.optimizer,
                   c.hyper, c.l2)
    finish_step(fit.cursor, fit.epoch_loss, fit.epoch_grad_norm, fit.grad_norms,
                np.float64(total_loss), np.int64(m), n, c.batch_size)
    return OK


@jit
def apply_and_begin_next(state, fit, x, targets, config, rank, size, sums, begin_next):
    """apply_reduced_step, then (if it succeeded and begin_next) local_gradient_sums for the
    next step: one compiled call between two Allreduces, so a step pays for unboxing the
    bundles once rather than twice (most of the ~12 us a split step costs over
    steps.train_steps; docs/scaling.md)."""
    status = apply_reduced_step(state, fit, config, sums, x.shape[0])
    if status == OK and begin_next:
        local_gradient_sums(state, fit, x, targets, config, rank, size, sums)
    return status


@jit
def loss_sum_rows(acts, logits, deltas, x, targets, params, layers, rows, loss, unweighted):
    """Sum over every row of x of the per-row loss (no l2 term), `rows` rows at a time: a
    rank's part of a loss over rows split across ranks. unweighted: an empty float64 array
    (network.UNWEIGHTED), batch_loss's row weights."""
    n = x.shape[0]
    total = 0.0
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        total += batch_loss(acts, logits, deltas, x[start:stop], targets[start:stop], params,
                            layers, rows, loss, unweighted)
    return total
