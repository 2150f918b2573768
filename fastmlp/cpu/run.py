"""CpuRun: one fit on the CPU (fit/protocols.Run), the twin of cuda/run.CudaRun.

Its per-fit facts are the shared bundles of core/workspace.py: the FitState (permutation,
cursor, per-epoch statistics, sample weights, schedule) and the StepConfig (sizes, codes,
hyper-parameters); the model's buffers stay with the CpuBackend that started it. The row
permutation is the backend's, continued in place, so a second fit on as many rows goes on
with the shuffle sequence: fit(3 epochs) + fit(3 epochs) == fit(6 epochs).

A small network trains with the kernel generated for its architecture (cpu/specialize.py)
unless sample weights, l2_per_sample or a schedule other than Constant are on, or
(config.SPECIALIZE "auto") that kernel is not compiled yet and the whole fit is too short to
pay for its compile (specialize.worth_using); a wide one (threads.parts_for) with the
data-parallel parallel.train_steps; any other with cpu_steps.train_steps, looked up at each
call (tests replace it). While it trains, BLAS keeps config.BLAS_THREADS threads (from the
first train_steps to close()).
"""
import contextlib

import numpy as np

from .. import config
from ..core.blas import limit_threads
from ..core.jitcache import compile_for, ready
from ..core.optimizers import LR
from ..core.schedules import check_schedule, current_lr, replay_constant_steps
from ..core.status import OK
from ..core.workspace import fit_state, step_config
from . import ahead, parallel, specialize, threads
from . import steps as cpu_steps


class CpuRun:
    """One fit of a CpuBackend's model (backend.start(plan) makes it)."""

    def __init__(self, backend, plan):
        self.backend, self.plan = backend, plan
        spec, objective, rows = backend.spec, plan.objective, plan.train
        n = plan.n
        self.X, self.T = rows.X, rows.T
        self.schedule = check_schedule(plan.schedule)
        if hasattr(self.schedule, "start"):  # ReduceOnPlateau: the rate it starts from
            self.schedule.start(plan.optimizer.lr)
        if backend.perm.shape[0] != n:
            backend.perm = np.arange(n, dtype=np.int64)
        weighted = rows.weights is not None
        self.config = step_config(spec, backend.ensure_rows(plan.batch_size), objective.loss,
                                  plan.optimizer, objective.l2, plan.batch_size, plan.shuffle,
                                  weighted, objective.l2_per_sample, self.schedule)
        self.validation = plan.validation
        self.next_segment(plan.first_segment())
        self.kernel, self.extra = None, ()
        if specialize.supports(weighted, self.schedule.code, objective.l2_per_sample):
            kernel, extra = specialize.for_fit(spec, objective.loss, plan.optimizer,
                                               plan.batch_size, backend.dtype)
            steps = plan.epochs * plan.steps_per_epoch
            if kernel is not None and specialize.worth_using(
                    kernel, (*self.bundles(), 0, *extra), spec, steps):
                self.kernel, self.extra = kernel, extra
        if self.kernel is None and threads.parts_for(plan.batch_size, spec.n_weights) > 1:
            self.kernel, self.extra = backend.train_parts(plan.batch_size)
        self.calls = 0
        self.limits = None

    @property
    def blas_limit(self):
        """BLAS threads while this fit trains: config.BLAS_THREADS."""
        return config.BLAS_THREADS

    # -- what MpiRun reads, through methods ------------------------------------------------
    def bundles(self):
        """(TrainState, FitState, X, T, StepConfig): the generic kernel's arguments before
        n_steps."""
        return (self.backend.train_state(), self.fit_state, self.X, self.T, self.config)

    def checkpoint(self):
        """Copy the model's state and the schedule's counters, for restore_if_overflowed."""
        self.backend.save_backup()
        self.schedule_backup[:] = self.schedule.state

    # -- Run -------------------------------------------------------------------------------
    def next_segment(self, epochs):
        self.fit_state = fit_state(self.plan.n, epochs, len(self.backend.spec.layers),
                                   self.config.hyper, self.plan.batch_size,
                                   self.plan.train.weights, self.schedule, self.backend.perm)
        self.epoch_loss = self.fit_state.epoch_loss
        self.epoch_grad_norm = self.fit_state.epoch_grad_norm
        self.epoch_lr = self.fit_state.epoch_lr
        self.schedule_backup = self.schedule.state.copy()

    def _kernel(self):
        """(the kernel this fit trains with, its extra arguments after n_steps)."""
        if self.kernel is None:
            return cpu_steps.train_steps, ()
        return self.kernel, self.extra

    def _calls(self):
        """(kernel, arguments) of every compiled call the fit makes: its training kernel
        (with n_steps 0) and, with validation rows, evaluate_rows on them."""
        kernel, extra = self._kernel()
        calls = [(kernel, (*self.bundles(), 0, *extra))]
        v = self.validation
        if v is not None:
            calls.append((cpu_steps.evaluate_rows,
                          self.backend.evaluate_args(None, v.X, v.T, self.plan.objective,
                                                     v.weights)))
        return calls

    def kernels_ready(self):
        """True when every kernel the fit calls is in memory, or numba's disk cache had it
        (it is loaded now, as the first call would: a warm run is not "compiling")."""
        return ready(self._calls())

    def train_steps(self, n_steps):
        """Up to n_steps minibatch updates in one compiled call: (status, steps done).
        n_steps = 0 trains nothing and changes nothing (no cursor move, no shuffle, no
        schedule step): it compiles the fit's kernels, or loads them from numba's cache."""
        if self.limits is None:
            self.limits = contextlib.ExitStack()
            self.limits.enter_context(limit_threads(self.blas_limit))
        if n_steps == 0:
            if not self.kernels_ready():  # a cold start: a helper compiles alongside
                kernel = self._kernel()[0]
                ahead.start(self.backend, "team" if kernel is parallel.train_steps else
                            "serial" if kernel is cpu_steps.train_steps else None)
            for kernel, args in self._calls():
                compile_for(kernel, *args)
            return OK, 0
        self.checkpoint()
        self.calls += 1
        kernel, extra = self._kernel()
        args = self.bundles()
        if self.kernel is None:
            status, done = kernel(*args, n_steps)
        elif kernel is parallel.train_steps:  # keeps every record the generic one does
            with limit_threads(1):  # the parts are the threads
                status, done = self.backend.train_threads.run(
                    lambda n_threads, count: kernel(*args, count, *extra, threads=n_threads),
                    n_steps)
        else:
            cursor = self.fit_state.cursor.copy()
            try:
                status, done = kernel(*args, n_steps, *extra)
            except KeyboardInterrupt:  # raised as the call returned: its steps still count
                self._replay(cursor, self._steps_since(cursor))
                raise
            self._replay(cursor, done)
        return int(status), int(done)

    def _replay(self, cursor, done):
        """The generated kernels train at the constant rate and keep no record of it: the
        records and schedule counters of `done` steps from cursor."""
        replay_constant_steps(self.schedule.state, self.epoch_lr, cursor, done, self.plan.n,
                              self.config.batch_size, self.config.hyper[LR])

    def _steps_since(self, cursor):
        """Steps the kernel took from cursor ([epoch, batch]) to where it is now."""
        n_batches = -(-self.plan.n // self.config.batch_size)
        now = self.fit_state.cursor
        return int((now[0] - cursor[0]) * n_batches + now[1] - cursor[1])

    def cursor(self):
        return int(self.fit_state.cursor[0]), int(self.fit_state.cursor[1])

    def current_lr(self):
        return current_lr(self.schedule, self.config.hyper[LR])

    def validation_loss(self):
        v = self.validation
        return self.backend.loss_rows(v.X, v.T, self.plan.objective, v.weights)

    def restore_if_overflowed(self):
        if not self.backend.restore_if_overflowed():
            return False
        self.schedule.state[:] = self.schedule_backup
        return True

    def agree_to_stop(self, stop):
        return bool(stop)  # one process: its own decision

    def finished(self):
        return False

    def annotate(self, history):
        """A minibatch fit's History needs nothing more."""

    def path(self):
        if self.kernel is None:
            return "generic"
        return "parallel" if self.kernel is parallel.train_steps else "generated"

    def launches(self):
        return self.calls

    def close(self):
        if self.limits is not None:
            self.limits.close()
            self.limits = None
