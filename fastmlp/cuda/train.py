"""Host drivers of the device: the training loop of one fit (Trainer), chunked inference, the
loss and the gradients; the twins of cpu/train.py's train_steps, forward_rows, loss_rows and
gradient_rows.

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
weights once per epoch (weights.batch_weight_sums, in the CPU loop's order) and passes the
step's sum, rate (schedules.scheduled_lr, from the schedule's counters, which the host
advances as the CPU loop does) and l2 coefficient as launch arguments.
"""
import numpy as np

from .. import config
from ..core.optimizers import LR
from ..core.rng import shuffle
from ..core.schedules import CONSTANT, Constant, advance, replay_constant_steps, scheduled_lr
from ..core.sample_weight import batch_weight_sums, total_weight
from . import device, fused
from .elementwise import l2_backward_kernel
from .fused_steps import StepsRun
from .network import StepPlan, network_backward, network_loss, network_output
from .optim import STATUS, STEPS_DONE, kernels as optimizer_kernels


class Uploader:
    """Copies host data into one device array asynchronously, through two pinned staging
    buffers used in turn; a buffer is refilled only after its previous copy has run."""

    def __init__(self, target):
        cuda = device.cuda_module()
        self.target = target
        self.stream = cuda.default_stream()  # the stream the kernels run on: copies queue in order
        self.staging = [cuda.pinned_array(target.shape, target.dtype) for _ in range(2)]
        self.events = [cuda.event() for _ in range(2)]
        self.used = [False, False]
        self.turn = 0

    def buffer(self):
        """The next staging buffer, once it is free to overwrite."""
        k = self.turn
        if self.used[k]:
            self.events[k].synchronize()
        return self.staging[k]

    def send(self):
        """Queue the copy of the buffer just filled into the device array."""
        k = self.turn
        self.target.copy_to_device(self.staging[k], stream=self.stream)
        self.events[k].record(self.stream)
        self.used[k] = True
        self.turn = 1 - k


def data_budget():
    """Device bytes the data of one fit may take (config.CUDA_DATA_BYTES)."""
    budget = config.CUDA_DATA_BYTES
    return device.free_bytes() // 2 if budget is None else budget


def data_rows_that_fit(n, row_bytes, batch_size):
    """Rows of training data to keep on the device at once: n, or whole batches of them."""
    budget = data_budget()
    if n * row_bytes <= budget:
        return n
    return max(1, budget // row_bytes // batch_size) * batch_size


class Trainer:
    """The device side of one `fit`: data on the device, the step plans, the launch loop.

    train_steps(n) has the contract of cpu/train.train_steps: up to n steps, (status, steps
    done), the host arrays epoch_loss, epoch_grad_norm and epoch_lr filled for the epochs
    touched, the schedule's counters advanced; a batch of zero weight is skipped, as there.
    """

    def __init__(self, dws, rng, X, T, batch_size, shuffle_rows, epochs, epoch_loss,
                 epoch_grad_norm, validation, loss, optimizer, l2, perm=None, *,
                 weights=None, schedule=None, l2_per_sample=False, epoch_lr=None):
        """dws: the DeviceWorkspace, which holds a batch already (ensure_rows); rng: the
        host's shuffling state (rng.shuffle advances it in place); loss: a loss code;
        optimizer: an optimizers.Optimizer; perm: the row permutation to continue from
        (shuffled in place; default the identity); validation: None or (Xv, Tv, Wv or
        None); weights: None or float64 (n,); schedule: a schedules.Schedule (its state is
        advanced in place); epoch_lr: the host array of each epoch's last rate."""
        self.dws = dws
        self.loss, self.l2, self.l2_per_sample = loss, l2, l2_per_sample
        self.weights = weights
        self.schedule = Constant() if schedule is None else schedule
        self.schedule_params = self.schedule.params()
        self.schedule_backup = self.schedule.state.copy()
        self.epoch_lr = np.full(epochs, np.nan) if epoch_lr is None else epoch_lr
        # (rows, rate, applied, epoch ended, epoch, epoch_lr[epoch] before) of each step
        # queued in this call, to recount if the device stops before the last
        self.queued = []
        self.call_cursor = np.zeros(2, np.int64)
        self.device_steps = 0
        self.n = n = X.shape[0]
        self.batch_size, self.shuffle_rows = batch_size, shuffle_rows
        self.n_batches = -(-n // batch_size)
        self.epoch_loss, self.epoch_grad_norm = epoch_loss, epoch_grad_norm
        self.X, self.T = X, T
        self.rng = rng
        self.perm = np.arange(n, dtype=np.int64) if perm is None else perm
        self.hyper = optimizer.hyper()
        dws.ensure_epochs(epochs)
        dws.hyper.copy_to_device(self.hyper)
        device.fill(dws.status, 0)
        self.steps_done = 0
        self.cursor = [0, 0]
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
        if validation is not None:
            Xv, Tv, Wv = validation
            fits = self.chunk_rows == n and Xv.nbytes + Tv.nbytes + X.nbytes + T.nbytes \
                <= data_budget()
            self.validation = ((device.upload(Xv), device.upload(Tv), Wv) if fits
                               else validation)
        self.steps_run = self._steps_run(optimizer.code)

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
        dws = self.dws
        dws.save_backup()
        self.schedule_backup[:] = self.schedule.state
        self.call_cursor[:] = self.cursor
        self.queued.clear()
        self.device_steps = 0
        first_epoch = self.cursor[0]
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
        epoch, b = self.cursor
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
                self.cursor = following
                return
            if self.l2_per_sample:
                l2 = self.l2 / weight_sum
        self.device_steps += 1
        self.plans[m].launch(start, epoch, self.dws.opt_step + self.device_steps, self.hyper,
                             lr, weight_sum, l2)
        self.queued.append((m, lr, True, ended, epoch, self.epoch_lr[epoch]))
        self.epoch_lr[epoch] = lr
        advance(state, lr, m, True, ended)
        self.cursor = following  # only now: a Ctrl-C inside launch leaves it at this step

    def _collect(self, first_epoch):
        """Wait for the queued steps; read the status and the touched epochs' statistics."""
        dws = self.dws
        status = dws.status.copy_to_host()
        applied = int(status[STEPS_DONE]) - self.steps_done
        self.steps_done += applied
        dws.opt_step += applied
        ran = self._account(applied)
        last_epoch = min(self.cursor[0], self.epoch_loss.shape[0] - 1)
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
        return loss_rows(self.dws, Xv, Tv, self.loss, self.l2, Wv, self.l2_per_sample)

    def restore_if_overflowed(self):
        """After a failed step: if an update overflowed the weights themselves, go back to
        the start of the last train_steps call (as the CPU path does); True if it did."""
        if self.dws.params_finite():
            return False
        self.dws.restore_backup()
        self.schedule.state[:] = self.schedule_backup
        return True


# -- inference, loss and gradients on host data, dws.rows rows at a time ---------------
def _rows(dws, source, lo, hi, buffer):
    """Rows lo:hi of source on the device: a view if source is a device array, else copied
    into the start of a workspace buffer."""
    if hasattr(source, "copy_to_host"):
        return source[lo:hi]
    view = buffer[:hi - lo]
    view.copy_to_device(source[lo:hi])
    return view


def forward_rows(out, dws, x):
    """out (n, n_outputs) = network output for every row of x (host arrays)."""
    for lo in range(0, x.shape[0], dws.rows):
        hi = min(lo + dws.rows, x.shape[0])
        launches, outputs = network_output(dws, _rows(dws, x, lo, hi, dws.xbatch), hi - lo)
        for launch in launches:
            launch()
        outputs.copy_to_host(out[lo:hi])


def loss_rows(dws, x, targets, loss, l2, weights=None, l2_per_sample=False):
    """Mean loss over every row of x as one batch (weighted by the float64 `weights` when
    given), plus the l2 term (a float); l2_per_sample divides the l2 coefficient by the
    weight sum (the rows when unweighted), as cpu/train.loss_rows."""
    n = x.shape[0]
    total = 0.0
    for lo in range(0, n, dws.rows):
        hi = min(lo + dws.rows, n)
        for launch in network_loss(dws, _rows(dws, x, lo, hi, dws.xbatch),
                                   _rows(dws, targets, lo, hi, dws.tbatch), hi - lo, loss):
            launch()
        row_losses = dws.row_losses[:hi - lo].copy_to_host()
        if weights is None:
            total += float(np.sum(row_losses))
        else:  # a zero-weight row adds nothing, even if its loss is inf
            w = weights[lo:hi]
            total += float(np.dot(w[w != 0], row_losses[w != 0]))
    weight_sum = float(n) if weights is None else total_weight(weights)
    result = total / weight_sum
    if l2 != 0:
        coefficient = l2 / weight_sum if l2_per_sample else l2
        result += 0.5 * coefficient * _sum_squares(dws, dws.params[:dws.spec.n_weights])
    return result


def _sum_squares(dws, values):
    sum_squares = optimizer_kernels(config.CUDA_THREADS).sum_squares
    sum_squares[1, config.CUDA_THREADS](dws.scalar, values)
    return float(dws.scalar.copy_to_host()[0])


def gradient_rows(dws, x, targets, loss, l2, weights=None, l2_per_sample=False):
    """dws.grads = gradient of loss_rows, l2 term included (unlike the training step's
    grads); x must fit the buffers in one batch (n <= rows)."""
    n = x.shape[0]
    weighting = None
    weight_sum = float(n)
    if weights is not None:
        weight_sum = total_weight(weights)
        weighting = (device.upload(weights), device.upload(np.arange(n, dtype=np.int64)), 0,
                     1.0 / weight_sum)
    for launch in network_backward(dws, _rows(dws, x, 0, n, dws.xbatch),
                                   _rows(dws, targets, 0, n, dws.tbatch), n, loss, l2,
                                   weighting):
        launch()
    coefficient = l2 / weight_sum if l2_per_sample else l2
    if coefficient != 0:  # as cpu/network.l2_backward
        threads = config.CUDA_THREADS
        n_weights = dws.spec.n_weights
        l2_backward_kernel[-(-n_weights // threads), threads](dws.grads, dws.params,
                                                              n_weights, coefficient)
