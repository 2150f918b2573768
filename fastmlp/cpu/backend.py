"""The CPU backend: a model's buffers on the host and the compiled calls over them.

cuda/backend.py has the same methods; model.py holds one of the two and training.py drives
either through these methods alone:

  get_state / set_state          the persistent buffers (params, moments, step, rng), host copies
  get_params / set_params        the flat parameter vector alone
  forward_rows / loss_rows / gradient_rows    inference, the loss and its gradient on host data
                                              (the first two: one kernel, evaluate_rows)
  begin_fit / train_steps / validation_loss / restore_if_overflowed    one fit's compiled loop
  current_lr, epoch_lr, epoch_loss, epoch_grad_norm                  what the loop recorded

Sample weights (`weights=`) are float64 arrays, one per row, in every method (converted and
checked once, by weights.check_sample_weight); the loss is the weighted mean
sum(w l) / sum(w). l2_per_sample=True gives the l2 term scikit-learn's form,
0.5 * l2 * sum ||W||^2 / sum(w) (sum(w) of the batch; its rows when unweighted), instead of
0.5 * l2 * sum ||W||^2.
"""

import numpy as np

from .. import config
from ..core.blas import limit_threads
from ..core.jitcache import compile_for, is_compiled
from ..core.optimizers import LR
from ..core.schedules import check_schedule, current_lr, replay_constant_steps
from ..core.status import OK
from ..inputs.validation import for_kernels
from ..core.sample_weight import check_sample_weight
from ..core.workspace import Workspace, fit_state, step_config
from . import parallel, specialize, threads
from .network import UNWEIGHTED
from . import train as cpu_train



class CpuBackend:
    device = "cpu"

    @property
    def blas_limit(self):
        """BLAS threads while a fit trains (training.fit sets them): config.BLAS_THREADS."""
        return config.BLAS_THREADS

    def __init__(self, spec, dtype, state=None):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.ws = Workspace(spec, self.dtype)
        # evaluate_rows' arguments when it has no outputs or no targets to take: empty, and
        # typed as the ones it otherwise gets (a writable out, read-only targets).
        self.no_outputs = np.empty((0, spec.n_outputs), self.dtype)
        self.no_targets = for_kernels(np.empty((0, spec.n_outputs), self.dtype))
        self.fit_state = self.config = self.kernel = self.schedule = None
        self.extra = ()
        # The data-parallel kernels' buffers (training, inference) and thread choosers.
        self.train_parts = self.forward_parts = None
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

    def _rows(self, batch):
        self.ws.ensure_rows(max(batch, config.MIN_WORKSPACE_ROWS))
        return self.ws.rows

    # -- inference, loss and gradients ---------------------------------------------------
    def forward_rows(self, X):
        """Output activations of every row of X, (n, n_outputs)."""
        rows = self._rows(1)
        out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
        if (X.shape[0] >= config.PARALLEL_MIN_FORWARD_ROWS
                and threads.parts_for(rows, self.spec.n_weights) > 1):
            self._forward_parallel(out, X)
            return out
        self._evaluate(out, X, self.no_targets, 0, 0.0, UNWEIGHTED, False)
        return out

    def _forward_parallel(self, out, X):
        """forward_rows with the rows split over one part per thread, in blocks of
        config.MIN_WORKSPACE_ROWS rows a part."""
        most = threads.most_threads()
        if self.forward_parts is None or self.forward_parts.parts != most:
            self.forward_parts = parallel.PartBuffers(self.spec, self.dtype, most,
                                                      config.MIN_WORKSPACE_ROWS)
            self.forward_threads = threads.ThreadChooser(most, probe_units=1)
        bufs = self.forward_parts
        block = bufs.parts * bufs.rows
        n = X.shape[0]
        position = [0]

        def blocks(n_threads, count):
            lo = position[0]
            hi = min(n, lo + count * block)
            parallel.forward_parts(out, bufs.acts, bufs.deltas, bufs.logits, X, self.ws.params,
                                   self.spec.table, bufs.rows, lo, hi)
            position[0] = hi
            return OK, count

        with limit_threads(1):  # the parts are the threads
            self.forward_threads.run(blocks, 0)  # compiles (or loads) it outside the timing
            self.forward_threads.run(blocks, -(-n // block))

    def loss_rows(self, X, T, loss, l2, weights=None, l2_per_sample=False):
        """The mean loss over the rows of X as one batch (weighted by `weights` when
        given), plus the l2 term."""
        self._rows(1)
        w = _row_weights(weights, X.shape[0])
        return float(self._evaluate(self.no_outputs, X, T, loss, l2, w, l2_per_sample))

    def _evaluate_args(self, out, X, T, loss, l2, weights, l2_per_sample):
        """The arguments of cpu_train.evaluate_rows, every scalar of one type (one compile):
        inference and the loss share that kernel, its unused array empty."""
        ws = self.ws
        return (out, ws.acts, ws.logits, ws.deltas, X, T, ws.params, self.spec.table, ws.rows,
                int(loss), self.spec.n_weights, float(l2), weights, bool(l2_per_sample))

    def _evaluate(self, *args):
        return cpu_train.evaluate_rows(*self._evaluate_args(*args))

    def gradient_rows(self, X, T, loss, l2, weights=None, l2_per_sample=False):
        """The flat gradient of loss_rows on (X, T), a copy; the parameters do not change."""
        rows = self._rows(X.shape[0])
        ws = self.ws
        w = _row_weights(weights, X.shape[0])
        cpu_train.gradient_rows(ws.grads, ws.acts, ws.logits, ws.deltas, X, T, ws.params,
                                self.spec.table, rows, loss, self.spec.n_weights, l2, w,
                                bool(l2_per_sample))
        return ws.grads.copy()

    # -- training ------------------------------------------------------------------------
    def begin_fit(self, X, T, batch_size, shuffle, epochs, loss, optimizer, l2,
                  validation=None, *, weights=None, schedule=None, l2_per_sample=False,
                  fit_epochs=None):
        """Set up one fit: the row permutation, the cursor and the per-epoch statistics
        (epoch_loss, epoch_grad_norm: sums the caller turns into means; epoch_lr: the rate
        of each epoch's last update). validation: None, (Xv, Tv) or (Xv, Tv, Wv).
        weights: None or one weight per row of X; schedule: None (constant) or a
        schedules.Schedule, whose counters this fit continues and advances. fit_epochs: the
        epochs of the whole fit when this call sets up one segment of it (`epochs`), for
        the choice of kernel: a long fit pays for a generated kernel's compile.

        A small network trains with the kernel generated for its architecture
        (cpu/specialize.py) unless weights, l2_per_sample or a schedule other than
        Constant are on, or (config.SPECIALIZE "auto") that kernel is not compiled yet and
        the fit is too short to pay for its compile (specialize.worth_using); a wide one
        (threads.parts_for) with the data-parallel parallel.train_steps; any other with
        cpu_train.train_steps, looked up at each call (tests replace it)."""
        n_layers = len(self.spec.layers)
        rows = self._rows(batch_size)
        w = _weights(weights, X.shape[0])
        self.schedule = check_schedule(schedule)
        if hasattr(self.schedule, "start"):  # ReduceOnPlateau: the rate it starts from
            self.schedule.start(optimizer.lr)
        self.X, self.T = X, T
        self.validation = _validation(validation)
        self.loss, self.l2, self.l2_per_sample = loss, l2, bool(l2_per_sample)
        if self.perm.shape[0] != X.shape[0]:
            self.perm = np.arange(X.shape[0], dtype=np.int64)
        self.fit_state = fit_state(X.shape[0], epochs, n_layers, optimizer.hyper(), batch_size,
                                   w, self.schedule, self.perm)
        self.epoch_loss = self.fit_state.epoch_loss
        self.epoch_grad_norm = self.fit_state.epoch_grad_norm
        self.epoch_lr = self.fit_state.epoch_lr
        self.schedule_backup = self.schedule.state.copy()
        self.config = step_config(self.spec, rows, loss, optimizer, l2, batch_size, shuffle,
                                  w is not None, l2_per_sample, self.schedule)
        self.kernel, self.extra = None, ()
        if specialize.supports(w is not None, self.schedule.code, self.l2_per_sample):
            kernel, extra = specialize.for_fit(self.spec, loss, optimizer, batch_size,
                                               self.dtype)
            steps = (fit_epochs or epochs) * -(-X.shape[0] // batch_size)
            if kernel is not None and specialize.worth_using(
                    kernel, (*self._fit_kernel()[1], 0, *extra), self.spec, steps):
                self.kernel, self.extra = kernel, extra
        parts = threads.parts_for(batch_size, self.spec.n_weights)
        if self.kernel is None and parts > 1:
            part_rows = -(-batch_size // parts)
            bufs = self.train_parts
            if bufs is None or bufs.parts != parts or bufs.rows < part_rows:
                self.train_parts = parallel.PartBuffers(self.spec, self.dtype, parts,
                                                        part_rows)
                self.train_threads = threads.ThreadChooser(parts)
            self.kernel, self.extra = parallel.train_steps, self.train_parts.arrays()

    def _fit_kernel(self):
        """(the kernel this fit trains with, its arguments before n_steps, and the extra
        ones after)."""
        args = (self.ws.train_state(), self.fit_state, self.X, self.T, self.config)
        if self.kernel is None:
            return cpu_train.train_steps, args, ()
        return self.kernel, args, self.extra

    def _calls(self):
        """(kernel, arguments) of every compiled call a fit makes: its training kernel (with
        n_steps 0) and, with validation data, evaluate_rows on it."""
        kernel, args, extra = self._fit_kernel()
        calls = [(kernel, (*args, 0, *extra))]
        if self.validation is not None:
            Xv, Tv, Wv = self.validation
            calls.append((cpu_train.evaluate_rows,
                          self._evaluate_args(self.no_outputs, Xv, Tv, self.loss, self.l2,
                                              UNWEIGHTED if Wv is None else Wv,
                                              self.l2_per_sample)))
        return calls

    def kernels_ready(self):
        """True when every kernel the current fit calls is compiled and in memory."""
        return all(is_compiled(kernel, *args) for kernel, args in self._calls())

    def train_steps(self, n_steps):
        """Up to n_steps minibatch updates in one compiled call: (status, steps done).

        n_steps = 0 trains nothing and changes nothing (no cursor move, no shuffle, no
        schedule step): it compiles the fit's kernels, or loads them from numba's cache, so
        that training.fit can keep that time out of the epochs' seconds."""
        if n_steps == 0:
            for kernel, args in self._calls():
                compile_for(kernel, *args)
            return OK, 0
        self.ws.save_backup()
        self.schedule_backup[:] = self.schedule.state
        fit = self.fit_state
        kernel, args, extra = self._fit_kernel()
        if self.kernel is None:
            status, done = kernel(*args, n_steps)
            return int(status), int(done)
        if kernel is parallel.train_steps:  # keeps every record the generic one does
            with limit_threads(1):  # the parts are the threads
                status, done = self.train_threads.run(
                    lambda n_threads, count: kernel(*args, count, *extra), n_steps)
            return int(status), int(done)
        cursor = fit.cursor.copy()
        status, done = kernel(*args, n_steps, *extra)
        # The generated kernels train at the constant rate and keep no record of it.
        replay_constant_steps(self.schedule.state, self.epoch_lr, cursor, done,
                              self.X.shape[0], self.config.batch_size,
                              self.config.hyper[LR])
        return int(status), int(done)

    def cursor(self):
        """(epoch, batch) the current fit has reached, counted from its begin_fit."""
        return int(self.fit_state.cursor[0]), int(self.fit_state.cursor[1])

    def current_lr(self):
        """The learning rate of the most recent update (of the next one before any; None
        before the first begin_fit)."""
        return current_lr(self.schedule, None if self.config is None else self.config.hyper[LR])

    def validation_loss(self):
        """The loss on the validation data, weighted by its weights when it has them."""
        Xv, Tv, Wv = self.validation
        return self.loss_rows(Xv, Tv, self.loss, self.l2, Wv, self.l2_per_sample)

    def restore_if_overflowed(self):
        """After a failed step: if an update overflowed the weights themselves, go back to
        the copy taken when the last compiled call started; True if it did."""
        if np.isfinite(self.ws.params).all():
            return False
        self.ws.restore_backup()
        self.schedule.state[:] = self.schedule_backup
        return True


def _weights(weights, n):
    """None, or the checked float64 weights of n rows."""
    return None if weights is None else check_sample_weight(weights, n)


def _row_weights(weights, n):
    """The kernels' weights argument: the checked weights, or UNWEIGHTED (empty) for None."""
    return UNWEIGHTED if weights is None else check_sample_weight(weights, n)


def _validation(validation):
    """(Xv, Tv, Wv or None) from None, (Xv, Tv) or (Xv, Tv, Wv); None stays None."""
    if validation is None:
        return None
    if len(validation) == 2:
        return (*validation, None)
    Xv, Tv, Wv = validation
    return Xv, Tv, _weights(Wv, Xv.shape[0])
