"""The CPU backend (fit/protocols.Backend): a model's buffers on the host and the compiled
calls over them, for as long as the model lives; one fit is a CpuRun (cpu/run.py), made by
start(plan).

  get_state / set_state          the persistent buffers (params, moments, step, rng), host copies
  get_params / set_params        the flat parameter vector alone
  forward_rows / loss_rows / gradient_rows    inference, the objective and its gradient on
                                              host rows (the first two: one kernel,
                                              evaluate_rows)
  start(plan) -> CpuRun          one fit

cuda/backend.py has the same members. Sample weights are float64 arrays, one per row, or
None, checked once by the model (core/sample_weight.check_sample_weight); the loss is the
weighted mean sum(w l) / sum(w). The objective (fit/plan.Objective) carries the loss code,
l2 and its convention.
"""

import numpy as np

from .. import config
from ..core.blas import limit_threads
from ..core.jitcache import compile_for
from ..core.spec import NetworkSpec
from ..core.status import OK
from ..inputs.validation import check_finite, for_kernels
from ..core.workspace import Workspace
from . import ahead, parallel, threads
from .network import UNWEIGHTED
from .run import CpuRun
from . import steps as cpu_steps


class CpuBackend:
    device = "cpu"

    def __init__(self, spec, dtype, state=None):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.ws = Workspace(spec, self.dtype)
        # evaluate_rows' arguments when it has no outputs or no targets to take: empty, and
        # typed as the ones it otherwise gets (a writable out, read-only targets).
        self.no_outputs = np.empty((0, spec.n_outputs), self.dtype)
        self.no_targets = for_kernels(np.empty((0, spec.n_outputs), self.dtype))
        # The data-parallel kernels' buffers (training, inference) and thread choosers, kept
        # from one fit to the next.
        self.train_parts_buffers = self.forward_parts = None
        self.train_threads = self.forward_threads = None
        # The row permutation outlives a fit: a second fit on as many rows continues the
        # shuffle sequence, so fit(3 epochs) + fit(3 epochs) == fit(6 epochs).
        self.perm = np.zeros(0, np.int64)
        if state is not None:
            self.set_state(state)

    # -- state ---------------------------------------------------------------------------
    def get_state(self):
        """Host copies of the persistent buffers (workspace.STATE) and the permutation."""
        return self.ws.get_state(self.perm)

    def set_state(self, state):
        """Buffers from get_state (or a file); "perm" is optional and of any length."""
        perm = self.ws.set_state(state)
        if perm is not None:
            self.perm = perm

    def get_params(self):
        return self.ws.params.copy()

    def set_params(self, params):
        self.ws.params[:] = params

    def ensure_rows(self, batch):
        """The row capacity of the buffers, grown to hold `batch` rows if needed."""
        self.ws.ensure_rows(max(batch, config.MIN_WORKSPACE_ROWS))
        return self.ws.rows

    # -- inference, loss and gradients ---------------------------------------------------
    def forward_rows(self, X, unchecked=None):
        """Output activations of every row of X, (n, n_outputs); unchecked: as in
        fit/protocols.py. The split pass checks the first layer's pre-activations instead
        of X (parallel.first_layer_finite) and looks at X only when one is not finite."""
        ahead.wait(self.dtype)
        self.ensure_rows(1)
        out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
        if self._splits_forward(X.shape[0]):
            if not self._forward_parallel(out, X) and unchecked:
                check_finite(X, unchecked)  # X's own, or a finite X that overflowed there
            return out
        if unchecked:
            check_finite(X, unchecked)
        cpu_steps.evaluate_rows(*self.evaluate_args(out, X, self.no_targets, None, None))
        return out

    def check_finite_first(self, X, what):
        """As in fit/protocols.py. A split forward reads NaN and infinity off the first
        layer it computes anyway, instead of one more pass over X (forward_rows checks on
        the serial path too, should a fit in another thread change the choice meanwhile)."""
        if self._splits_forward(X.shape[0]):
            return what
        check_finite(X, what)
        return None

    def _splits_forward(self, n_rows):
        return n_rows >= config.PARALLEL_MIN_FORWARD_ROWS and self._parallel_forward()

    def _parallel_forward(self):
        """Whether forward_rows splits many rows over parts (parallel.forward_parts)."""
        return threads.parts_for(self.ws.rows, self.spec.n_weights) > 1

    def inference_calls(self, split=None):
        """(kernel, arguments) of the inference kernels, on no rows: evaluate_rows (predict,
        the loss, the validation loss: one kernel) and, where forward_rows would split many
        rows over parts (or with split=True), parallel.forward_parts. Their types depend on
        the dtype alone, so cpu/ahead.py's helper compiles them for a network of its own."""
        self.ensure_rows(1)
        x = for_kernels(np.zeros((0, self.spec.n_inputs), self.dtype))
        out = np.empty((0, self.spec.n_outputs), self.dtype)
        calls = [(cpu_steps.evaluate_rows,
                  self.evaluate_args(out, x, self.no_targets, None, None))]
        if self._parallel_forward() if split is None else split:
            bufs = parallel.PartBuffers(self.spec, self.dtype, 2, 1)
            calls.append((parallel.forward_parts,
                          (out, bufs.acts, bufs.deltas, bufs.logits, x, self.ws.params,
                           self.spec.table, bufs.rows, 0, 0, bufs.sync)))
        return calls

    def _forward_parallel(self, out, X):
        """forward_rows with the rows split over the threads in chunks of
        config.FORWARD_CHUNK_ROWS rows, each thread taking the next chunk as it comes
        (parallel.forward_parts); the thread chooser's unit is one chunk per part. Returns
        whether every first-layer pre-activation was finite."""
        most = threads.most_threads()
        bufs = self.forward_parts
        if bufs is None or bufs.parts != most or bufs.rows != config.FORWARD_CHUNK_ROWS:
            bufs = self.forward_parts = parallel.PartBuffers(self.spec, self.dtype, most,
                                                             config.FORWARD_CHUNK_ROWS)
            self.forward_threads = threads.ThreadChooser(most, probe_units=1)
        block = bufs.parts * bufs.rows
        n = X.shape[0]
        position = [0]
        bufs.sync[parallel.NONFINITE] = 0

        def blocks(n_threads, count):
            lo = position[0]
            hi = min(n, lo + count * block)
            parallel.forward_parts(out, bufs.acts, bufs.deltas, bufs.logits, X, self.ws.params,
                                   self.spec.table, bufs.rows, lo, hi, bufs.sync,
                                   threads=n_threads if count else 1)  # 0: loads it, no team
            position[0] = hi
            return OK, count

        with limit_threads(1):  # the parts are the threads
            self.forward_threads.run(blocks, 0)  # compiles (or loads) it outside the timing
            self.forward_threads.run(blocks, n // block)
            if position[0] < n:  # the short last block, untimed: it would pass for a fast one
                blocks(self.forward_threads.best(), 1)
        return bufs.sync[parallel.NONFINITE] == 0

    def loss_rows(self, X, T, objective, weights=None):
        """The objective's mean over the rows of X as one batch (weighted by `weights` when
        given), plus the l2 term."""
        ahead.wait(self.dtype)
        self.ensure_rows(1)
        return float(cpu_steps.evaluate_rows(*self.evaluate_args(None, X, T, objective,
                                                                 weights)))

    def evaluate_args(self, out, X, T, objective, weights):
        """The arguments of cpu_steps.evaluate_rows, every scalar of one type (one compile):
        inference (objective None) and the loss (out None) share that kernel, its unused
        array empty."""
        ws = self.ws
        loss, l2, per_sample = (0, 0.0, False) if objective is None else \
            (objective.loss, objective.l2, objective.l2_per_sample)
        return (self.no_outputs if out is None else out, ws.acts, ws.logits, ws.deltas, X, T,
                ws.params, self.spec.table, ws.rows, int(loss), self.spec.n_weights,
                float(l2), UNWEIGHTED if weights is None else weights, bool(per_sample))

    def gradient_rows(self, X, T, objective, weights=None):
        """The flat gradient of loss_rows on (X, T), a copy; the parameters do not change."""
        rows = self.ensure_rows(X.shape[0])
        ws = self.ws
        cpu_steps.gradient_rows(ws.grads, ws.acts, ws.logits, ws.deltas, X, T, ws.params,
                                self.spec.table, rows, objective.loss, self.spec.n_weights,
                                objective.l2, UNWEIGHTED if weights is None else weights,
                                bool(objective.l2_per_sample))
        return ws.grads.copy()

    # -- one fit -------------------------------------------------------------------------
    def start(self, plan):
        """One fit of `plan` (fit/plan.FitPlan): a CpuRun at its first segment."""
        return CpuRun(self, plan)

    # -- what a CpuRun or MpiRun uses --------------------------------------------------------
    def train_state(self):
        """The TrainState bundle of the model's buffers."""
        return self.ws.train_state()

    def train_parts(self, batch_size):
        """(parallel.train_steps, its part buffers) for batches of batch_size rows, the
        buffers and thread chooser kept while they fit."""
        parts = threads.parts_for(batch_size, self.spec.n_weights)
        part_rows = -(-batch_size // parts)
        bufs = self.train_parts_buffers
        if bufs is None or bufs.parts != parts or bufs.rows < part_rows:
            self.train_parts_buffers = parallel.PartBuffers(self.spec, self.dtype, parts,
                                                            part_rows)
            self.train_threads = threads.ThreadChooser(parts)
        return parallel.train_steps, self.train_parts_buffers.arrays()

    def save_backup(self):
        """Copy params and optimizer state aside (at the start of each compiled call)."""
        self.ws.save_backup()

    def restore_if_overflowed(self):
        """If an update overflowed the weights themselves, go back to the copy save_backup
        took; True if it did."""
        if np.isfinite(self.ws.params).all():
            return False
        self.ws.restore_backup()
        return True


def compile_ahead(dtype, split, training):
    """What cpu/ahead.py's helper process runs: the separately compiled functions of the
    training kernel named `training` (ahead.TRAINING; "none": none), the last it reaches
    first; then the inference kernels of dtype (forward_parts too with `split`). Any network
    compiles the same overloads for a dtype (CpuBackend.inference_calls); this one is small
    to build."""
    calls = ahead.TRAINING[training](np.dtype(dtype)) if training in ahead.TRAINING else []
    backend = CpuBackend(NetworkSpec(1, [(1, "identity")]), dtype)
    for kernel, args in calls + backend.inference_calls(split=split):
        compile_for(kernel, *args)
