"""Flat buffers: one allocation per kind, laid out by the spec; layers are named views.

Parameter-sized kinds (params, grads, moment1, moment2 and their backups) live as long as the
model. Row-sized kinds (activations, deltas, output logits, the gathered input and target
batch) hold `rows` rows and are rebuilt only when a larger batch is asked for.

The compiled training loops (cpu/steps.py and the generated kernels of cpu/codegen.py) take
their buffers as three bundles, so that their signature is written once: TrainState (the
model's buffers), FitState (one fit's bookkeeping) and StepConfig (sizes, codes and
hyper-parameters). A bundle costs about a microsecond more to unbox than its arrays passed
one by one, once per compiled call of many steps (docs/tuning.md).
"""
from typing import NamedTuple

import numpy as np

from .schedules import Constant


#: The buffers that make up a model's training state, saved and moved between devices.
STATE = ("params", "moment1", "moment2", "opt_step", "rng")


def state_layout(spec, dtype):
    """{name: (shape, dtype)} of get_state's arrays for a spec, without allocating them;
    "perm" has shape None (any length: the rows of the last fit)."""
    n = (spec.n_params,)
    return {"params": (n, dtype), "moment1": (n, dtype), "moment2": (n, dtype),
            "opt_step": ((1,), np.int64), "rng": ((1,), np.uint64), "perm": (None, np.int64)}


class TrainState(NamedTuple):
    """The model's buffers a training step reads and writes."""
    params: np.ndarray
    grads: np.ndarray
    moment1: np.ndarray
    moment2: np.ndarray
    opt_step: np.ndarray
    rng: np.ndarray
    acts: np.ndarray
    logits: np.ndarray
    deltas: np.ndarray
    xbatch: np.ndarray
    tbatch: np.ndarray


class FitState(NamedTuple):
    """One fit's bookkeeping: the row permutation, the cursor [epoch, batch], the
    per-epoch statistics the loop adds to, the sample weights and the schedule.

    weights: float64 (n,), or (0,) when the rows are unweighted; wbatch: float64
    (batch_size,), the step's weights gathered through perm. hyper: the optimizer's
    hyper-parameters for this step (StepConfig.hyper with LR rewritten by the schedule
    before each update). schedule_params, schedule_state: the schedule's parameters and
    its counters (schedules.py; the state array is the schedule object's own, written in
    place). epoch_lr[e]: the learning rate of epoch e's last update."""
    perm: np.ndarray
    cursor: np.ndarray
    epoch_loss: np.ndarray
    epoch_grad_norm: np.ndarray
    grad_norms: np.ndarray
    weights: np.ndarray
    wbatch: np.ndarray
    hyper: np.ndarray
    schedule_params: np.ndarray
    schedule_state: np.ndarray
    epoch_lr: np.ndarray


class StepConfig(NamedTuple):
    """What a step needs besides buffers: the spec's layer table, the row capacity of the
    buffers, the codes and the hyper-parameters.

    weighted: the rows carry sample weights (FitState.weights). l2_per_sample: the l2 term
    is scikit-learn's 0.5 * l2 * sum ||W||^2 / (the batch's weight sum, or its rows when
    unweighted) instead of 0.5 * l2 * sum ||W||^2. schedule: the schedule's code
    (schedules.py)."""
    layers: np.ndarray
    rows: int
    n_weights: int
    loss: int
    optimizer: int
    hyper: np.ndarray
    l2: float
    batch_size: int
    shuffle: bool
    weighted: bool = False
    l2_per_sample: bool = False
    schedule: int = 0


def step_config(spec, rows, loss, optimizer, l2, batch_size, shuffle, weighted=False,
                l2_per_sample=False, schedule=None):
    """A StepConfig with every scalar of a fixed type, so that it compiles once. schedule:
    a schedules.Schedule or None (constant)."""
    return StepConfig(spec.table, int(rows), int(spec.n_weights), int(loss),
                      int(optimizer.code), optimizer.hyper(), float(l2), int(batch_size),
                      bool(shuffle), bool(weighted), bool(l2_per_sample),
                      0 if schedule is None else int(schedule.code))


def fit_state(n, epochs, n_layers, hyper, batch_size, weights=None, schedule=None,
              perm=None):
    """A FitState for a fit of `epochs` epochs over n rows, the cursor at the start and zero
    statistics; weights: None or float64 (n,); schedule: a schedules.Schedule, whose state
    array the loop then writes, or None (a private constant schedule); perm: the row
    permutation to continue (shuffled in place), or None for the identity."""
    schedule = Constant() if schedule is None else schedule
    unweighted = weights is None
    perm = np.arange(n, dtype=np.int64) if perm is None else perm
    return FitState(perm, np.zeros(2, np.int64), np.zeros(epochs),
                    np.zeros((epochs, n_layers)), np.zeros(n_layers),
                    np.zeros(0) if unweighted else weights,
                    np.zeros(0 if unweighted else batch_size), hyper.copy(),
                    schedule.params(), schedule.state, np.full(epochs, np.nan))



class Workspace:
    def __init__(self, spec, dtype):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        n = spec.n_params
        self.params = np.zeros(n, self.dtype)
        self.grads = np.zeros(n, self.dtype)
        self.moment1 = np.zeros(n, self.dtype)     # SGD velocity, or Adam's first moment
        self.moment2 = np.zeros(n, self.dtype)     # Adam's second moment
        self.opt_step = np.zeros(1, np.int64)      # updates made so far
        self.rng = np.zeros(1, np.uint64)          # splitmix64 state for shuffling
        # Copies taken at the start of each compiled training call, to restore the model if an
        # update ever overflows the parameters themselves (see MLP.fit).
        self.backup = np.zeros((3, n), self.dtype)
        self.backup_step = np.zeros(1, np.int64)
        self.rows = 0
        self.acts = self.deltas = self.logits = self.xbatch = self.tbatch = None

    @staticmethod
    def nbytes(spec, dtype, rows):
        """Bytes of a Workspace for spec whose row buffers hold `rows` rows: the sizes of
        the arrays __init__ and ensure_rows allocate (seven parameter-sized, five per row),
        for a check of memory before any of them exists."""
        per_row = 2 * spec.total_width + 2 * spec.n_outputs + spec.n_inputs
        return np.dtype(dtype).itemsize * (7 * spec.n_params + rows * per_row)

    def ensure_rows(self, rows):
        """Make the row-sized buffers hold at least `rows` rows (no-op if they already do)."""
        if rows <= self.rows:
            return
        spec = self.spec
        self.rows = rows
        self.acts = np.zeros(rows * spec.total_width, self.dtype)
        self.deltas = np.zeros(rows * spec.total_width, self.dtype)
        self.logits = np.zeros(rows * spec.n_outputs, self.dtype)
        self.xbatch = np.zeros(rows * spec.n_inputs, self.dtype)
        self.tbatch = np.zeros(rows * spec.n_outputs, self.dtype)

    def get_state(self, perm):
        """Host copies of the persistent buffers (STATE) and the row permutation `perm`: a
        model's whole training state, as saved and moved between devices."""
        return {**{name: getattr(self, name).copy() for name in STATE}, "perm": perm.copy()}

    def set_state(self, state):
        """Copy get_state's buffers in; returns the permutation ("perm" is optional and of
        any length: the rows of the last fit), or None when state has none."""
        for name in STATE:
            getattr(self, name)[:] = state[name]
        return np.array(state["perm"], dtype=np.int64) if "perm" in state else None

    def train_state(self):
        """The TrainState bundle of these buffers (call ensure_rows first)."""
        return TrainState(self.params, self.grads, self.moment1, self.moment2, self.opt_step,
                          self.rng, self.acts, self.logits, self.deltas, self.xbatch,
                          self.tbatch)

    # -- named views ---------------------------------------------------------------------
    def weights(self, l, buf=None):
        layer = self.spec.layers[l]
        buf = self.params if buf is None else buf
        return buf[self.spec.weight_slice(l)].reshape(layer.n_in, layer.n_out)

    def bias(self, l, buf=None):
        buf = self.params if buf is None else buf
        return buf[self.spec.bias_slice(l)]

    def pairs(self, buf):
        """[(W, b), ...] views of a parameter-sized buffer (params or grads)."""
        return self.spec.pairs(buf)

    # -- checkpoints ---------------------------------------------------------------------
    def save_backup(self):
        self.backup[0] = self.params
        self.backup[1] = self.moment1
        self.backup[2] = self.moment2
        self.backup_step[:] = self.opt_step

    def restore_backup(self):
        self.params[:] = self.backup[0]
        self.moment1[:] = self.backup[1]
        self.moment2[:] = self.backup[2]
        self.opt_step[:] = self.backup_step
