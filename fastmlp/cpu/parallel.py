"""Data-parallel training steps over the cores of one machine (a team of threads, team.py).

A GEMM-bound step on one core is bound by the two big products of its first layer; handing
each product to a two-thread BLAS speeds those up but leaves everything between them (the
batch gather, the epilogues, the loss, the reduction of dbias, the norms, the optimizer
update) on one core, and pays a BLAS thread hand-off per product. Here each step splits the
batch into `parts` row ranges, the way cpu/mpi.py splits it across MPI ranks
(split.rank_rows), and each member of the team runs the whole forward and backward pass of
its parts' rows with single-threaded BLAS into the parts' own buffers. One call of
`team_steps` per member runs all the steps of a call; a step is four phases with a barrier
after each:

  plan        member 0 alone: the next batch (shuffle, cursor), the scheduled rate, the
              batch's sample weights; written to the hand-over slots
  gradients   each part: gather its rows, forward, loss sum, backward into its own gradient
              buffer (already scaled by 1/m of the whole batch, so the parts' gradients add
              up to the batch's)
  reduce      each part's slice of the parameter vector: grads = sum of the parts'
              gradients, and in the same pass each layer's sum of squares of dW + l2 W (for
              the norms and the finiteness check) and of W (the l2 term of the loss)
  update      every member reads the same sums, so all reach the same verdict (a
              non-finite loss or gradient: all return, nothing updated); then each part's
              slice of the optimizer update, and member 0 the step's records

The caller keeps the BLAS library at one thread meanwhile (blas.limit_threads) and picks how
many members run the parts (threads.ThreadChooser).

One step here computes what one step of steps.train_steps does, from the same pieces; only
the order in which the rows' contributions are added differs (rounding in the last bits),
and the results depend on `parts`, never on how many members ran them or which ran which.
"""
import math

import numpy as np

from ..config import jit
from ..core.optimizers import LR, N_HYPER
from ..core.schedules import scheduled_lr
from ..core.spec import N_IN, N_OUT, W_OFFSET
from ..core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from . import team
from .network import batch_loss, network_backward, rows_view
from .optim import update_segment
from .split import rank_rows
from .steps import (callee_examples, end_step, forward_rows, gather_rows, loss_callees,
                    next_batch, weigh_step)
from .views import readonly, view2d

# The hand-over slots of a team's sync array (team.SLOTS on) and of PartBuffers.plan.
STEP, START, ROWS, EPOCH, OPT_STEP = range(team.SLOTS, team.SLOTS + 5)
#: forward_parts sets sync[NONFINITE] to 1 (the caller zeroes it) when a chunk's first layer
#: had a pre-activation that is not finite: the inputs' own check (see first_layer_finite).
NONFINITE = team.SLOTS + 5
WEIGHT_SUM = N_HYPER  # plan[:N_HYPER]: the step's hyper-parameters, the scheduled LR in it

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
        # what member 0 hands the others each step: hyper-parameters and weight sum; and the
        # team's barrier and integer slots
        self.plan = np.zeros(N_HYPER + 1)
        self.sync = team.new_sync()

    def arrays(self):
        return (self.acts, self.deltas, self.logits, self.xbatch, self.tbatch, self.grads,
                self.loss, self.sums, self.plan, self.sync)


@jit(inline="always")
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


@jit
def update_part(params, grads, moment1, moment2, n_weights, optimizer, hyper, step, l2, part,
                parts):
    """Part `part` of `parts` of the optimizer update (optim.optimizer_step's rule: l2 on the
    weights, not the biases): its slice of the weights and its slice of the biases.

    Slices are by `part`, not by member, so the update is the same however many members
    run the parts."""
    lo, hi = rank_rows(n_weights, part, parts)
    update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step, l2, True)
    lo, hi = rank_rows(params.shape[0] - n_weights, part, parts)
    update_segment(params, grads, moment1, moment2, n_weights + lo, n_weights + hi, optimizer,
                   hyper, step, 0.0, False)


@jit
def finish_norms(norms, part_sums, n_layers, write):
    """(every gradient finite, sum of W^2) from the parts' sums; with `write`, norms[l] too."""
    finite = True
    for l in range(n_layers + 1):
        sq = 0.0
        for p in range(part_sums.shape[0]):
            sq += part_sums[p, l]
        if write and l < n_layers:
            norms[l] = math.sqrt(sq)
        finite = finite and math.isfinite(sq)
    wsq = 0.0
    for p in range(part_sums.shape[0]):
        wsq += part_sums[p, n_layers + 1]
    return finite, wsq


@jit
def plan_step(n_steps, state, fit, config, n, plan, sync):
    """Member 0's share of a step: the next batch that has any weight at or after step
    sync[STEP] (a weighted batch whose weights are all zero is skipped: the cursor and the
    schedule move past it, as in steps.train_steps), handed over in sync's slots and plan;
    sync[STEP] becomes that batch's step (n_steps or more: none left)."""
    s, c = state, config
    step = sync[STEP]
    while step < n_steps:
        start, m = next_batch(fit.cursor, fit.perm, s.rng, n, c.batch_size, c.shuffle)
        epoch = fit.cursor[0]
        lr = scheduled_lr(c.schedule, fit.schedule_params, fit.schedule_state, c.hyper[LR])
        wb, weight_sum = weigh_step(fit, c, start, m, lr, epoch, n)
        if weight_sum == 0:
            step += 1
            continue
        for i in range(N_HYPER):
            plan[i] = fit.hyper[i]
        plan[LR] = lr
        plan[WEIGHT_SUM] = weight_sum
        sync[START] = start
        sync[ROWS] = m
        sync[EPOCH] = epoch
        sync[OPT_STEP] = s.opt_step[0] + 1
        break
    sync[STEP] = step


@jit
def team_steps(tid, size, state, fit, x, targets, config, n_steps, acts, deltas, logits,
               xbuf, tbuf, part_grads, part_loss, part_sums, plan, sync):
    """Member tid of `size`'s share of up to n_steps steps (the phases in the module's
    docstring); every member returns the same (status, steps done). A non-finite loss or
    gradient is found after the backward pass (the loss's l2 term comes from the
    reduction's sum of W^2) and, as in steps.train_steps, before any update."""
    s, c = state, config
    params, layers = s.params, c.layers
    n_layers = layers.shape[0]
    parts = part_loss.shape[0]
    rows = xbuf.shape[1] // x.shape[1]  # each part's row capacity
    n = x.shape[0]
    n_params = params.shape[0]
    if tid == 0:
        sync[STEP] = 0
    while True:
        if tid == 0:
            plan_step(n_steps, s, fit, c, n, plan, sync)
        if not team.barrier(sync, size):
            return team.ABORTED, 0
        step = sync[STEP]
        if step >= n_steps:
            return OK, n_steps
        start, m, epoch = sync[START], sync[ROWS], sync[EPOCH]
        weight_sum = plan[WEIGHT_SUM]
        wb = fit.wbatch[:m]  # empty when unweighted
        for p in range(tid, parts, size):
            lo, hi = rank_rows(m, p, parts)
            part_loss[p] = part_gradient(part_grads[p], acts[p], deltas[p], logits[p],
                                         xbuf[p], tbuf[p], x, targets, fit.perm, start, lo,
                                         hi, params, layers, rows, c.loss, 1.0 / weight_sum,
                                         wb)
        if not team.barrier(sync, size):
            return team.ABORTED, 0
        l2 = c.l2 / weight_sum if c.l2_per_sample else c.l2
        for p in range(tid, parts, size):
            lo, hi = rank_rows(n_params, p, parts)
            reduce_slice(s.grads, part_grads, params, layers, c.n_weights, l2, part_sums[p],
                         lo, hi)
        if not team.barrier(sync, size):
            return team.ABORTED, 0
        finite, wsq = finish_norms(fit.grad_norms, part_sums, n_layers, tid == 0)
        total_loss = part_loss.sum() / weight_sum + (0.5 * l2 * wsq if l2 != 0 else 0.0)
        if not math.isfinite(params.dtype.type(total_loss)):  # in the model's precision
            return NONFINITE_LOSS, step  # nothing updated: the weights are from before it
        if not finite:
            return NONFINITE_GRADIENT, step
        hyper = plan[:N_HYPER]
        for p in range(tid, parts, size):
            update_part(params, s.grads, s.moment1, s.moment2, c.n_weights, c.optimizer,
                        hyper, sync[OPT_STEP], l2, p, parts)
        if tid == 0:
            lr = plan[LR]
            fit.hyper[LR] = lr
            s.opt_step[0] += 1
            end_step(fit, c, lr, total_loss, m, n, epoch)
            sync[STEP] = step + 1  # the others read this step's before the barrier below
        if not team.barrier(sync, size):
            return team.ABORTED, 0


@jit
def team_forward(tid, size, out, acts, deltas, logits, x, params, layers, rows, lo, hi,
                 sync):
    """Member tid's share of out[lo:hi] = the network's outputs for rows [lo, hi) of x: the
    rows fall in chunks of `rows` rows from lo, which the members claim as they come (each
    in its own part buffers: acts, deltas, logits are PartBuffers'), so a member on a
    slower core takes fewer instead of the others waiting for it. Every row's arithmetic
    depends on its chunk alone, not on which member took it."""
    chunks = (hi - lo + rows - 1) // rows
    chunk = team.claim(sync)
    while chunk < chunks:
        a = lo + chunk * rows
        b = min(hi, a + rows)
        forward_rows(out[a:b], acts[tid], logits[tid], deltas[tid], x[a:b], params, layers,
                     rows)
        if not first_layer_finite(deltas[tid], logits[tid], layers, rows, b - a):
            team.raise_flag(sync, NONFINITE)
        chunk = team.claim(sync)
    return 0


@jit(inline="always")
def first_layer_finite(deltas, logits, layers, rows, m):
    """Whether the first layer's m rows of pre-activations, as network_forward left them,
    are all finite. A row whose input holds a NaN or an infinity has none finite (each
    product with it is NaN or infinite, 0 x inf included, and so is every sum holding one),
    so this stands in for scanning the inputs, at a sixth of the reads for 784 inputs and
    128 units, in cache; a finite input can also overflow here, which the caller's exact
    check tells apart. z * 0 is 0 for finite z and NaN otherwise (without fastmath's nnan,
    which config.FASTMATH leaves out, LLVM cannot fold it to 0), and the sum vectorises."""
    if layers.shape[0] == 1:
        z = view2d(logits, 0, m, layers[0, N_OUT])
    else:
        z = rows_view(deltas, layers, 0, rows, m)
    zero = z.dtype.type(0)
    total = zero
    for i in range(m):
        for j in range(z.shape[1]):
            total += z[i, j] * zero
    return total == zero


def separate_callees(dtype):
    """(dispatcher, arguments of the types team_steps passes) of the functions team_steps
    calls that numba compiles on their own, the last it reaches first: what cpu/ahead.py's
    helper compiles while the fit's own compile of team_steps works down from the top, so
    that the fit loads them when it gets there. (tests/test_fresh_processes.py checks them
    against what a cold fit compiles.)"""
    v, rows, _, table = callee_examples(dtype)
    sums = np.zeros(1)
    return [(update_part, (v, v, v, v, 0, 0, sums, 0, 0.0, 0, 2)),
            (finish_norms, (sums, np.zeros((1, 1)), 0, True)),
            (reduce_slice, (v, rows, v, table, 0, 0.0, sums, 0, 0))] + loss_callees(dtype)


class _TeamKernel:
    """A team kernel called as one function: its arguments without (tid, size) in front,
    then `threads=` (default: one member per part). core/jitcache compiles and checks the
    member kernel through jit_target."""

    def __init__(self, kernel, parts_of):
        self.kernel, self.parts_of = kernel, parts_of
        self.__name__ = kernel.__name__

    def jit_target(self, args):
        """(the numba dispatcher, the arguments it is called with) for a call with args."""
        return self.kernel, (0, 1, *args)

    def __call__(self, *args, threads=None):
        args, sync = args[:-1], args[-1]
        parts = self.parts_of(args)
        size = parts if threads is None else max(1, min(int(threads), parts))
        return team.run(self.kernel, size, args, sync)


#: train_steps(state, fit, x, targets, config, n_steps, *PartBuffers.arrays(), threads=None)
#: -> (status, steps done): steps.train_steps with each step's rows split over the parts,
#: the same arguments (then the part buffers), results and statuses.
train_steps = _TeamKernel(team_steps, lambda args: args[12].shape[0])


#: forward_parts(out, acts, deltas, logits, x, params, layers, rows, lo, hi, sync,
#: threads=None): out[lo:hi] = the network's outputs for rows [lo, hi) of x in chunks of
#: `rows` rows, on `threads` members (default: one per part buffer) claiming chunks as
#: they come.
forward_parts = _TeamKernel(team_forward, lambda args: args[1].shape[0])
