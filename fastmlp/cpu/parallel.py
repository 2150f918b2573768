"""Data-parallel training steps over the cores of one machine (Numba's thread pool).

A GEMM-bound step on one core is bound by the two big products of its first layer; handing
each product to a two-thread BLAS speeds those up but leaves everything between them (the
batch gather, the epilogues, the loss, the reduction of dbias, the norms, the optimizer
update) on one core, and pays a BLAS thread hand-off per product. Here each step splits the
batch into `parts` row ranges, one per thread, the way distributed.py splits it across MPI
ranks (split.rank_rows), and each thread runs the whole forward and backward pass of its
rows with single-threaded BLAS into its own buffers:

  part_gradients   prange over the parts: gather the part's rows, forward, loss sum,
                   backward into its own gradient buffer (already scaled by 1/m of the whole
                   batch, so the parts' gradients add up to the batch's)
  reduce_parts     prange over slices of the parameter vector: grads = sum of the parts'
                   gradients, and in the same pass each layer's sum of squares of
                   dW + l2 W (for the norms and the finiteness check) and of W (the l2 term
                   of the loss)
  update_parts     prange over slices of the parameter vector: the optimizer update

so the step crosses three parallel regions (about 1.5 us each with the OpenMP layer) and no
BLAS hand-off. The caller keeps the BLAS library at one thread meanwhile
(blas.limit_threads) and picks how many threads run the parts (threads.ThreadChooser).

One step here computes what one step of steps.train_steps does, from the same pieces; only
the order in which the rows' contributions are added differs (rounding in the last bits),
and the results depend on `parts`, never on which thread ran which part.
"""
import math

import numpy as np
from numba import prange

from ..config import jit, parallel_jit
from ..core.optimizers import LR
from ..core.schedules import scheduled_lr
from ..core.spec import N_IN, N_OUT, W_OFFSET
from ..core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from .network import batch_loss, network_backward
from .optim import update_segment
from .split import rank_rows
from .steps import end_step, forward_rows, gather_rows, next_batch, weigh_step
from .views import readonly, view2d

class PartBuffers:
    """Each part's own row buffers (one row of each 2-D array per part) and gradient, plus
    the per-part partial sums of a step. `rows`: the row capacity of each part."""

    def __init__(self, spec, dtype, parts, rows):
        self.parts, self.rows = parts, rows
        self.acts = np.zeros((parts, rows * spec.total_width), dtype)
        self.deltas = np.zeros((parts, rows * spec.total_width), dtype)
        self.logits = np.zeros((parts, rows * spec.n_outputs), dtype)
        self.xbatch = np.zeros((parts, rows * spec.n_inputs), dtype)
        self.tbatch = np.zeros((parts, rows * spec.n_outputs), dtype)
        self.grads = np.zeros((parts, spec.n_params), dtype)
        self.loss = np.zeros(parts)
        # per part: [sum (dW_l + l2 W_l)^2 for each layer l | sum db^2 | sum W^2]
        self.sums = np.zeros((parts, len(spec.layers) + 2))

    def arrays(self):
        return (self.acts, self.deltas, self.logits, self.xbatch, self.tbatch, self.grads,
                self.loss, self.sums)


@jit
def part_gradient(grads, acts, deltas, logits, xbuf, tbuf, x, targets, perm, start, lo, hi,
                  params, layers, rows, loss, scale, wbatch):
    """Rows [lo, hi) of the batch that starts at perm[start]: gather them, run forward and
    backward (gradient scaled by `scale`, 1/m or 1/sum(w) of the whole batch) into this
    part's grads; returns the part's loss sum. wbatch: the batch's sample weights, or empty
    when unweighted (network.UNWEIGHTED's convention)."""
    k = hi - lo
    if k == 0:  # fewer rows than parts
        grads[:] = 0
        return 0.0
    xb = view2d(xbuf, 0, k, x.shape[1])
    tb = view2d(tbuf, 0, k, targets.shape[1])
    gather_rows(xb, x, perm, start + lo, k)
    gather_rows(tb, targets, perm, start + lo, k)
    xb, tb = readonly(xb), readonly(tb)  # as in steps.train_steps: one compile of the passes
    wb = wbatch[lo:hi]  # empty stays empty
    total = batch_loss(acts, logits, deltas, xb, tb, params, layers, rows, loss, wb)
    network_backward(grads, deltas, acts, xb, tb, params, layers, rows, scale, loss, wb)
    return total


@parallel_jit
def part_gradients(bufs_acts, bufs_deltas, bufs_logits, bufs_x, bufs_t, bufs_grads,
                   bufs_loss, x, targets, perm, start, m, params, layers, rows, loss, scale,
                   wbatch):
    parts = bufs_loss.shape[0]
    for p in prange(parts):
        lo, hi = rank_rows(m, p, parts)
        bufs_loss[p] = part_gradient(bufs_grads[p], bufs_acts[p], bufs_deltas[p],
                                     bufs_logits[p], bufs_x[p], bufs_t[p], x, targets, perm,
                                     start, lo, hi, params, layers, rows, loss, scale,
                                     wbatch)


@jit
def reduce_slice(grads, part_grads, params, layers, n_weights, l2, sums, lo, hi):
    """grads[lo:hi] = sum over the parts (two or more) of part_grads[:, lo:hi]; sums = this
    slice's share of each layer's sum of (dW + l2 W)^2 (float64), of the biases' db^2 and
    of the weights' W^2. One pass: each gradient is read once, written once.

    The loops run over slices from index 0: with a start of unknown sign numba checks each
    index for wraparound, and the loops no longer vectorise (25x slower)."""
    sums[:] = 0
    parts = part_grads.shape[0]
    n_layers = layers.shape[0]
    for l in range(n_layers + 1):
        if l < n_layers:  # layer l's weights
            a = max(lo, layers[l, W_OFFSET])
            b = min(hi, layers[l, W_OFFSET] + layers[l, N_IN] * layers[l, N_OUT])
            decay = grads.dtype.type(l2)
        else:  # the biases, which take no l2 term
            a, b, decay = max(lo, n_weights), hi, grads.dtype.type(0)
        if a >= b:
            continue
        first, second = part_grads[0, a:b], part_grads[1, a:b]
        for p in range(2, parts):  # a third part on: folded into the second
            part = part_grads[p, a:b]
            for i in range(second.shape[0]):
                second[i] += part[i]
        g, w = grads[a:b], params[a:b]
        sq = 0.0
        wsq = 0.0
        for i in range(g.shape[0]):
            x = w[i]
            v = first[i] + second[i]
            g[i] = v
            v += decay * x
            sq += np.float64(v) * v
            wsq += np.float64(x) * x
        sums[l] = sq
        if l < n_layers:
            sums[n_layers + 1] += wsq


@parallel_jit
def reduce_parts(grads, part_grads, params, layers, n_weights, l2, part_sums):
    parts = part_sums.shape[0]
    n = grads.shape[0]
    for p in prange(parts):
        lo, hi = rank_rows(n, p, parts)
        reduce_slice(grads, part_grads, params, layers, n_weights, l2, part_sums[p], lo, hi)


@jit
def update_part(params, grads, moment1, moment2, n_weights, optimizer, hyper, step, l2, part,
                parts):
    """Part `part` of `parts` of the optimizer update (optim.optimizer_step's rule: l2 on the
    weights, not the biases): its slice of the weights and its slice of the biases.

    A call of its own, not inlined into update_parts' prange: update_segment's raise for an
    unknown code would give the loop a second exit, and numba then runs it serially."""
    lo, hi = rank_rows(n_weights, part, parts)
    update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step, l2, True)
    lo, hi = rank_rows(params.shape[0] - n_weights, part, parts)
    update_segment(params, grads, moment1, moment2, n_weights + lo, n_weights + hi, optimizer,
                   hyper, step, 0.0, False)


@parallel_jit
def update_parts(params, grads, moment1, moment2, n_weights, optimizer, hyper, step, l2,
                 parts):
    for p in prange(parts):
        update_part(params, grads, moment1, moment2, n_weights, optimizer, hyper, step, l2, p,
                    parts)


@jit
def finish_norms(norms, part_sums, n_layers):
    """norms[l] from the parts' sums; returns (every gradient finite, sum of W^2)."""
    finite = True
    for l in range(n_layers + 1):
        sq = 0.0
        for p in range(part_sums.shape[0]):
            sq += part_sums[p, l]
        if l < n_layers:
            norms[l] = math.sqrt(sq)
        finite = finite and math.isfinite(sq)
    wsq = 0.0
    for p in range(part_sums.shape[0]):
        wsq += part_sums[p, n_layers + 1]
    return finite, wsq


@jit
def train_steps(state, fit, x, targets, config, n_steps, acts, deltas, logits, xbuf, tbuf,
                part_grads, part_loss, part_sums):
    """steps.train_steps with each step's rows split over the parts of the part buffers
    (acts ... part_sums, PartBuffers.arrays()); the same arguments, results and statuses.
    A non-finite loss or gradient is found after the backward pass (the loss's l2 term
    comes from the reduction's sum of W^2) and, as there, before any update."""
    s, c = state, config
    params, layers = s.params, c.layers
    n_layers = layers.shape[0]
    parts = part_loss.shape[0]
    rows = xbuf.shape[1] // x.shape[1]  # each part's row capacity
    n = x.shape[0]
    for step in range(n_steps):
        start, m = next_batch(fit.cursor, fit.perm, s.rng, n, c.batch_size, c.shuffle)
        epoch = fit.cursor[0]
        lr = scheduled_lr(c.schedule, fit.schedule_params, fit.schedule_state, c.hyper[LR])
        wb, weight_sum = weigh_step(fit, c, start, m, lr, epoch, n)
        if weight_sum == 0:  # nothing to learn from: skipped
            continue
        part_gradients(acts, deltas, logits, xbuf, tbuf, part_grads, part_loss, x, targets,
                       fit.perm, start, m, params, layers, rows, c.loss, 1.0 / weight_sum,
                       wb)
        l2 = c.l2 / weight_sum if c.l2_per_sample else c.l2
        reduce_parts(s.grads, part_grads, params, layers, c.n_weights, l2, part_sums)
        finite, wsq = finish_norms(fit.grad_norms, part_sums, n_layers)
        total_loss = part_loss.sum() / weight_sum + (0.5 * l2 * wsq if l2 != 0 else 0.0)
        if not math.isfinite(params.dtype.type(total_loss)):  # in the model's precision
            return NONFINITE_LOSS, step  # nothing updated: the weights are from before it
        if not finite:
            return NONFINITE_GRADIENT, step
        fit.hyper[LR] = lr
        s.opt_step[0] += 1
        update_parts(params, s.grads, s.moment1, s.moment2, c.n_weights, c.optimizer,
                     fit.hyper, s.opt_step[0], l2, parts)
        end_step(fit, c, lr, total_loss, m, n, epoch)
    return OK, n_steps


@parallel_jit
def forward_parts(out, acts, deltas, logits, x, params, layers, rows, lo, hi):
    """out[lo:hi] = the network's outputs for rows [lo, hi) of x, the rows split over the
    parts of the part buffers (acts, deltas, logits: PartBuffers'), each part `rows` rows
    at a time."""
    parts = acts.shape[0]
    for p in prange(parts):
        a, b = rank_rows(hi - lo, p, parts)
        forward_rows(out[lo + a:lo + b], acts[p], logits[p], deltas[p], x[lo + a:lo + b],
                     params, layers, rows)
