"""CudaRun: one fit on the device (fit/protocols.Run), the twin of cpu/run.CpuRun.

Per training step the host only launches kernels (network.StepPlan): nothing is allocated
and nothing is copied. Per epoch, with shuffle, the host shuffles the row permutation with
rng.shuffle, exactly as the CPU kernels do (so both see the same batches for the same
seed), and queues an asynchronous copy of it (8 bytes a row) from pinned memory. Data too big
for the device budget (config.CUDA_DATA_BYTES) is streamed instead: the host gathers each
chunk of whole batches in permutation order and queues its copy, and the device reads it in
order. At each return to Python (the progress bar) the host reads the status word and the
epoch statistics: a few numbers.

Sample weights stay with the data (uploaded once, or streamed with each chunk) and the loss
kernel reads each row's weight through the permutation; the host adds up each batch's
weights once per epoch (sample_weight.batch_weight_sums, in the CPU loop's order) and passes
the step's sum, rate (schedules.scheduled_lr, from the schedule's counters, which the host
advances as the CPU loop does) and l2 coefficient as launch arguments.
"""
import numpy as np

from ..core.optimizers import LR
from ..core.rng import shuffle
from ..core.schedules import (CONSTANT, advance, check_schedule, current_lr,
                              replay_constant_steps, scheduled_lr)
from ..core.sample_weight import batch_weight_sums
from ..core.status import OK
from ..core.workspace import fit_state
from . import device, fused
from .fused_steps import StepsRun
from .network import StepPlan
from .optim import STATUS, STEPS_DONE
from .rows import Uploader, data_budget, data_rows_that_fit, loss_rows


class CudaRun:
    """The device side of one `fit` (fit/protocols.Run, the twin of cpu/run.CpuRun): data
    on the device, the step plans, the launch loop. backend.start(plan) makes it.

    train_steps(n) has the contract of cpu/steps.train_steps: up to n steps, (status, steps
    done), the host arrays epoch_loss, epoch_grad_norm and epoch_lr filled for the epochs
    touched, the schedule's counters advanced; a batch of zero weight is skipped, as there.
    Its per-fit facts are the shared core/workspace.FitState: the row permutation (the
    backend's, continued in place), the cursor, the per-epoch statistics, the sample
    weights, the hyper-parameters and the schedule's parameters and counters.
    """
    #: The host's BLAS does no training work: left as it is.
    blas_limit = None

    def __init__(self, backend, plan):
        self.backend, self.plan = backend, plan
        self.dws = dws = backend.dws
        objective, rows = plan.objective, plan.train
        X, T, weights = rows.X, rows.T, rows.weights
        loss, l2, l2_per_sample = objective.loss, objective.l2, objective.l2_per_sample
        self.loss, self.l2, self.l2_per_sample = loss, l2, l2_per_sample
        optimizer = plan.optimizer
        self.weights = weights
        self.schedule = check_schedule(plan.schedule)
        if hasattr(self.schedule, "start"):  # ReduceOnPlateau: the rate it starts from
            self.schedule.start(plan.optimizer.lr)
        self.base_lr = float(plan.optimizer.hyper()[LR])
        # (rows, rate, applied, epoch ended, epoch, epoch_lr[epoch] before) of each step
        # queued in this call, to recount if the device stops before the last
        self.queued = []
        self.call_cursor = np.zeros(2, np.int64)
        self.device_steps = 0
        self.n = n = X.shape[0]
        batch_size = plan.batch_size
        self.batch_size, self.shuffle_rows = batch_size, plan.shuffle
        self.n_batches = -(-n // batch_size)
        self.X, self.T = X, T
        self.rng = backend.host.rng  # the host's shuffling state, advanced in place
        backend.ensure_rows(batch_size)  # the workspace holds a batch (and an inference chunk)
        if backend.perm.shape[0] != n:
            backend.perm = np.arange(n, dtype=np.int64)
        self.optimizer = plan.optimizer
        self.next_segment(plan.first_segment())
        self.perm = self.fit_state.perm
        self.hyper = self.fit_state.hyper
        self.schedule_params = self.fit_state.schedule_params
        dws.hyper.copy_to_device(self.hyper)
        device.fill(dws.status, 0)
        self.steps_done = 0
        self.launch_count = 0
        weighted = weights is not None
        row_bytes = (X.shape[1] + T.shape[1]) * X.dtype.itemsize + 8 * weighted
        self.chunk_rows = data_rows_that_fit(n, row_bytes, batch_size)
        self.w = None
        if self.chunk_rows == n:  # resident: the data crosses once, the permutation per epoch
            self.x, self.t = device.upload(X), device.upload(T)
            if weighted:
                self.w = device.upload(weights)
            self.perm_device = device.upload(self.perm)
            self.perm_upload = Uploader(self.perm_device)
        else:  # streamed: chunks of permuted rows; the device reads each in order
            self.x = device.empty((self.chunk_rows, X.shape[1]), X.dtype)
            self.t = device.empty((self.chunk_rows, T.shape[1]), T.dtype)
            self.perm_device = device.upload(np.arange(self.chunk_rows, dtype=np.int64))
            self.x_upload, self.t_upload = Uploader(self.x), Uploader(self.t)
            if weighted:
                self.w = device.empty(self.chunk_rows, np.float64)
                self.w_upload = Uploader(self.w)
        if weighted:
            self.batch_sums = np.zeros(self.n_batches)
            batch_weight_sums(self.batch_sums, weights, self.perm, batch_size)
        # The fused kernel keeps the plain mean, a fixed l2 and the optimizer's own rate.
        self.fused = dws.fused and not weighted and self.schedule.code == CONSTANT
        last = n - (self.n_batches - 1) * batch_size
        # Unweighted, scikit-learn's l2 / (rows) is fixed per plan; weighted, per step.
        self.plans = {m: StepPlan(dws, self.x, self.t, self.perm_device, m, loss,
                                  optimizer.code, l2 / m if l2_per_sample and not weighted
                                  else l2, self.w, self.fused)
                      for m in {batch_size, last}}
        self.validation = None
        if plan.validation is not None:
            Xv, Tv, Wv = plan.validation.X, plan.validation.T, plan.validation.weights
            fits = self.chunk_rows == n and Xv.nbytes + Tv.nbytes + X.nbytes + T.nbytes \
                <= data_budget()
            self.validation = ((device.upload(Xv), device.upload(Tv), Wv) if fits
                               else (Xv, Tv, Wv))
        self.steps_run = self._steps_run(optimizer.code)

    def next_segment(self, epochs):
        """A fresh FitState of `epochs` epochs (cursor and statistics at zero), continuing
        the permutation, the hyper-parameters and the schedule's counters."""
        self.fit_state = fit_state(self.n, epochs, len(self.dws.spec.layers),
                                   self.optimizer.hyper(), self.batch_size, self.weights,
                                   self.schedule, self.backend.perm)
        self.dws.ensure_epochs(epochs)
        self.schedule_backup = self.schedule.state.copy()

    @property
    def epoch_loss(self):
        return self.fit_state.epoch_loss

    @property
    def epoch_grad_norm(self):
        return self.fit_state.epoch_grad_norm

    @property
    def epoch_lr(self):
        return self.fit_state.epoch_lr

    def at(self):
        """The cursor as (epoch, batch) Python ints (fused_steps.StepsRun reads it)."""
        return int(self.fit_state.cursor[0]), int(self.fit_state.cursor[1])

    def move_to(self, epoch, batch):
        self.fit_state.cursor[0], self.fit_state.cursor[1] = epoch, batch

    def _steps_run(self, optimizer):
        """A fused_steps.StepsRun (many steps per launch) where the network and a batch fit
        one block, else None (one launch per step, below). Like the fused kernel it keeps
        the plain mean, the optimizer's own rate and the fit's l2: not for weighted,
        scheduled or l2_per_sample fits."""
        usable = self.fused and not self.l2_per_sample
        shape = fused.use_steps(self.dws.spec, usable, self.batch_size,
                                self.X.dtype.itemsize, self.chunk_rows == self.n)
        return None if shape is None else StepsRun(self, shape, optimizer)

    @property
    def launches_per_step(self):
        return self.plans[self.batch_size].launches_per_step

    def _start_epoch(self):
        if self.shuffle_rows and self.batch_size < self.n:  # as cpu/train.next_batch
            shuffle(self.perm, self.rng)  # in place, from the previous epoch's, as on the CPU
            if self.weights is not None:
                batch_weight_sums(self.batch_sums, self.weights, self.perm, self.batch_size)
            if self.chunk_rows == self.n:
                self.perm_upload.buffer()[:] = self.perm
                self.perm_upload.send()

    def _send_chunk(self, b):
        """Queue the copy of the chunk of permuted rows that starts with batch b."""
        lo = b * self.batch_size
        hi = min(lo + self.chunk_rows, self.n)
        rows = self.perm[lo:hi]
        pairs = [(self.X, self.x_upload), (self.T, self.t_upload)]
        if self.weights is not None:
            pairs.append((self.weights, self.w_upload))
        for source, upload in pairs:
            staging = upload.buffer()
            np.take(source, rows, axis=0, out=staging[:hi - lo])
            upload.send()

    def train_steps(self, n_steps):
        """Up to n_steps steps: (status, steps done). n_steps = 0 does nothing: the CUDA
        kernels compile at their first launch (per tile size, cached per process)."""
        if n_steps == 0:
            return OK, 0
        dws = self.dws
        dws.save_backup()
        self.schedule_backup[:] = self.schedule.state
        self.call_cursor[:] = self.fit_state.cursor
        self.queued.clear()
        self.device_steps = 0
        first_epoch = self.at()[0]
        batches_per_chunk = self.chunk_rows // self.batch_size
        try:
            if self.steps_run is not None:
                self.steps_run.launch_steps(n_steps)
            else:
                for i in range(n_steps):
                    self._launch_step(i, batches_per_chunk)
        except KeyboardInterrupt:  # the queued steps still run: account for them, then stop
            self._collect(first_epoch)
            raise
        return self._collect(first_epoch)

    def _launch_step(self, i, batches_per_chunk):
        """Queue the launches of the i-th step of this call and advance the cursor."""
        epoch, b = self.at()
        if b == 0:
            self._start_epoch()
        start = b * self.batch_size
        if self.chunk_rows < self.n:
            if b % batches_per_chunk == 0:
                self._send_chunk(b)
            start -= (b // batches_per_chunk) * self.chunk_rows
        m = min(self.batch_size, self.n - b * self.batch_size)
        ended = b + 1 == self.n_batches
        following = [epoch + 1, 0] if ended else [epoch, b + 1]
        state = self.schedule.state
        lr = scheduled_lr(self.schedule.code, self.schedule_params, state, self.hyper[LR])
        weight_sum, l2 = None, None
        if self.weights is not None:
            weight_sum = self.batch_sums[b]
            if weight_sum == 0:  # nothing to learn from: skipped, as on the CPU
                advance(state, lr, m, False, ended)
                self.queued.append((m, lr, False, ended, epoch, 0.0))
                self.move_to(*following)
                return
            if self.l2_per_sample:
                l2 = self.l2 / weight_sum
        self.device_steps += 1
        self.launch_count += self.plans[m].launches_per_step
        self.plans[m].launch(start, epoch, self.dws.opt_step + self.device_steps, self.hyper,
                             lr, weight_sum, l2)
        self.queued.append((m, lr, True, ended, epoch, self.epoch_lr[epoch]))
        self.epoch_lr[epoch] = lr
        advance(state, lr, m, True, ended)
        self.move_to(*following)  # only now: a Ctrl-C inside launch leaves it at this step

    def _collect(self, first_epoch):
        """Wait for the queued steps; read the status and the touched epochs' statistics."""
        dws = self.dws
        status = dws.status.copy_to_host()
        applied = int(status[STEPS_DONE]) - self.steps_done
        self.steps_done += applied
        dws.opt_step += applied
        ran = self._account(applied)
        last_epoch = min(self.at()[0], self.epoch_loss.shape[0] - 1)
        stats = dws.epoch_stats[first_epoch:last_epoch + 1].copy_to_host()
        self.epoch_loss[first_epoch:last_epoch + 1] = stats[:, 0]
        self.epoch_grad_norm[first_epoch:last_epoch + 1] = stats[:, 1:]
        return int(status[STATUS]), ran

    def _account(self, applied):
        """Steps done in this call, given the updates the device applied: the queued steps
        up to the first the device did not apply (skipped ones count). The schedule's
        counters, advanced at each launch, are recounted when not every queued step ran;
        steps another launcher ran (no records) are counted at the constant rate."""
        if not self.queued:
            replay_constant_steps(self.schedule.state, self.epoch_lr, self.call_cursor,
                                  applied, self.n, self.batch_size, self.hyper[LR])
            return applied
        ran, left = 0, applied
        for record in self.queued:
            if record[2]:
                if left == 0:
                    break
                left -= 1
            ran += 1
        if ran < len(self.queued):
            for _, _, was_applied, _, epoch, before in reversed(self.queued[ran:]):
                if was_applied:
                    self.epoch_lr[epoch] = before
            state = self.schedule.state
            state[:] = self.schedule_backup
            for rows, lr, was_applied, ended, _, _ in self.queued[:ran]:
                advance(state, lr, rows, was_applied, ended)
        return ran

    def validation_loss(self):
        Xv, Tv, Wv = self.validation
        return loss_rows(self.dws, Xv, Tv, self.plan.objective, Wv)

    def restore_if_overflowed(self):
        """After a failed step: if an update overflowed the weights themselves, go back to
        the start of the last train_steps call (as the CPU path does); True if it did."""
        if self.dws.params_finite():
            return False
        self.dws.restore_backup()
        self.schedule.state[:] = self.schedule_backup
        return True

    def kernels_ready(self):
        """True: nothing compiles before the first launch, which compiles (per tile size,
        cached per process) inside the first step."""
        return True

    def cursor(self):
        return self.at()

    def current_lr(self):
        return current_lr(self.schedule, self.base_lr)

    def agree_to_stop(self, stop):
        return bool(stop)  # one process: its own decision

    def finished(self):
        return False

    def annotate(self, history):
        """A minibatch fit's History needs nothing more."""

    def path(self):
        if self.steps_run is not None:
            return "fused-steps"
        return "fused" if self.fused else "tiled"

    def launches(self):
        return self.launch_count + (0 if self.steps_run is None else self.steps_run.launches)

    def close(self):
        """Nothing to release: the device buffers are the backend's."""
