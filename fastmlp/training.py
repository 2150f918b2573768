"""The fit loop: hands the compiled train_steps whole runs of minibatches.

Python returns from compiled code only to update the progress bar (about every
config.PROGRESS_INTERVAL seconds), at epoch ends when there is validation data, or about once
a second otherwise; Ctrl-C is seen at those returns, i.e. between two whole batches.
"""
import contextlib
import math
import time

import numpy as np

from . import config
from .config import PROGRESS_INTERVAL
from .cpu import specialize
from .cpu import train as cpu_train
from .history import History
from .validation import check_bool, check_int

QUIET_INTERVAL = 1.0
FIRST_QUIET_STEPS = 4096
#: FLOPs the first quiet call may plan for before anything is timed: about a second's work.
FIRST_QUIET_FLOPS = 2e9


def _quiet_chunk(steps, steps_per_epoch):
    """Without a bar, calls cover whole epochs when an epoch is shorter than `steps`, so a
    small run takes one call whatever its size; a longer epoch is split, so that Ctrl-C is
    still seen about once a second."""
    if steps < steps_per_epoch:
        return max(1, steps)
    return steps // steps_per_epoch * steps_per_epoch


def _check_validation(model, validation_data):
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be an (X_val, y_val) pair")
    Xv = model._inputs(validation_data[0], "validation X")
    return Xv, model._targets(validation_data[1], Xv.shape[0], "validation y")


@contextlib.contextmanager
def blas_threads(limit):
    """Limit the BLAS libraries' threads (threadpoolctl, a dependency of scikit-learn) for
    the duration of a CPU fit; None leaves them alone."""
    if limit is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def fit(model, X, y, epochs, batch_size, shuffle, validation_data, progress):
    epochs = check_int(epochs, "epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    shuffle = check_bool(shuffle, "shuffle")
    progress = check_bool(progress, "progress")
    frozen = model.spec.inference_only_layers()
    if frozen:
        names = ", ".join(f"layer {i} ({model.spec.layers[i].activation})" for i in frozen)
        raise ValueError(f"cannot fit a model with {names}: its derivative is zero almost "
                         f"everywhere, so gradients cannot train it; use sigmoid or relu to "
                         f"train, and 'step' only for hand-set weights with set_weights")
    X, T = model._data(X, y)
    validation = _check_validation(model, validation_data)
    n = X.shape[0]
    batch_size = min(batch_size, n)
    n_layers = len(model.spec.layers)
    history = History(grad_norms=np.zeros((0, n_layers)))
    if epochs == 0:
        return history

    epoch_loss = np.zeros(epochs)
    epoch_grad_norm = np.zeros((epochs, n_layers))
    epoch_seconds = np.zeros(epochs)
    val_loss = []
    if model.device == "cuda":
        from .cuda.train import Trainer
        run = Trainer(model, X, T, batch_size, shuffle, epochs, epoch_loss, epoch_grad_norm,
                      validation)
    else:
        run = CpuRun(model, X, T, batch_size, shuffle, epoch_loss, epoch_grad_norm,
                     validation)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    interval = PROGRESS_INTERVAL if progress else QUIET_INTERVAL

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * n, unit="samples", unit_scale=True, leave=True,
                   desc=f"epoch 1/{epochs}")

    def record(done_before, done, seconds):
        # Spread a call's wall time evenly over the steps it ran: whole epochs get
        # steps_per_epoch steps' worth, the first and last the part they ran (in O(1)
        # Python: an xor call runs a hundred thousand one-step epochs).
        if done == done_before:
            return
        per_step = seconds / (done - done_before)
        first, last = done_before // steps_per_epoch, (done - 1) // steps_per_epoch
        epoch_seconds[first:last + 1] += per_step * steps_per_epoch
        epoch_seconds[first] -= per_step * (done_before - first * steps_per_epoch)
        epoch_seconds[last] -= per_step * ((last + 1) * steps_per_epoch - done)

    done = 0
    # Steps per compiled call. With a bar: start at one step and grow toward `interval`.
    # Without: see _quiet_chunk; the first call plans for about a second of FLOPs, at most
    # FIRST_QUIET_STEPS steps.
    first = min(FIRST_QUIET_STEPS, FIRST_QUIET_FLOPS // model.spec.flops_per_step(batch_size))
    chunk = 1 if progress else _quiet_chunk(int(first), steps_per_epoch)
    with blas_threads(config.BLAS_THREADS if model.device == "cpu" else None):
        try:
            while done < total_steps:
                steps = min(chunk, total_steps - done)
                if validation is not None:  # stop at the epoch's end to evaluate
                    steps = min(steps, steps_per_epoch - done % steps_per_epoch)
                start = time.perf_counter()
                status, ran = run.train_steps(steps)
                elapsed = time.perf_counter() - start
                record(done, done + ran, elapsed)
                before = done
                done += ran
                if status != cpu_train.OK:
                    _raise_nonfinite(run, status, done, steps_per_epoch)
                if validation is not None and done % steps_per_epoch == 0:
                    val_loss.append(run.validation_loss())
                if bar is not None:
                    _update_bar(bar, done - before, done, steps_per_epoch, batch_size, n, epochs,
                                epoch_loss)
                # Grow the run length toward `interval` seconds per call (at most x10 a call).
                per_step = elapsed / max(ran, 1)
                chunk = int(max(1, min(chunk * 10, interval / max(per_step, 1e-9))))
                if not progress:
                    chunk = _quiet_chunk(chunk, steps_per_epoch)
        except KeyboardInterrupt:
            history.interrupted = True
        finally:
            if bar is not None:
                bar.close()
    completed = min(done // steps_per_epoch, epochs)
    history.loss = epoch_loss[:completed] / n
    history.grad_norms = epoch_grad_norm[:completed] / steps_per_epoch
    history.seconds = epoch_seconds[:completed]
    history.val_loss = np.array(val_loss[:completed], dtype=np.float64)
    if history.interrupted:
        print(f"fastmlp: training interrupted after {completed} whole epoch(s); the model "
              f"keeps the weights of the last whole batch")
    return history


def _samples(steps, steps_per_epoch, batch_size, n):
    """Samples seen after `steps` steps (the last batch of an epoch may be short)."""
    whole, part = divmod(steps, steps_per_epoch)
    return whole * n + min(part * batch_size, n)


def _update_bar(bar, ran, done, steps_per_epoch, batch_size, n, epochs, epoch_loss):
    whole, part = divmod(done, steps_per_epoch)
    if part == 0:  # an epoch just ended: show its mean loss
        epoch, seen = whole - 1, n
    else:
        epoch, seen = whole, min(part * batch_size, n)
    bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)
    bar.set_postfix(loss=f"{epoch_loss[epoch] / seen:.4g}", refresh=False)
    bar.update(_samples(done, steps_per_epoch, batch_size, n)
               - _samples(done - ran, steps_per_epoch, batch_size, n))


class CpuRun:
    """One fit's compiled calls on the CPU. cuda/train.Trainer has the same three methods.

    A small network trains with the kernel generated for its architecture
    (cpu/specialize.py); any other with cpu_train.train_steps, looked up at each call (tests
    replace it)."""

    def __init__(self, model, X, T, batch_size, shuffle, epoch_loss, epoch_grad_norm,
                 validation):
        self.model, self.X, self.T = model, X, T
        self.batch_size, self.shuffle = batch_size, shuffle
        self.epoch_loss, self.epoch_grad_norm = epoch_loss, epoch_grad_norm
        self.validation = validation
        self.ws = model._ws
        self.rows = model._rows(batch_size)
        self.hyper = model.optimizer.hyper()
        self.perm = np.arange(X.shape[0], dtype=np.int64)
        self.cursor = np.zeros(2, np.int64)
        self.grad_norms = np.zeros(len(model.spec.layers))
        self.specialized, self.extra = specialize.for_fit(
            model.spec, model._loss_code, model.optimizer.code, self.hyper, batch_size,
            model.dtype)

    def train_steps(self, steps):
        """Up to `steps` minibatch updates in one compiled call: (status, steps done)."""
        ws, model = self.ws, self.model
        ws.save_backup()
        kernel = self.specialized or cpu_train.train_steps
        return kernel(
            ws.params, ws.grads, ws.moment1, ws.moment2, ws.opt_step, ws.acts, ws.logits,
            ws.deltas, ws.xbatch, ws.tbatch, self.perm, ws.rng, self.cursor, self.epoch_loss,
            self.epoch_grad_norm, self.grad_norms, self.X, self.T, model.spec.table,
            self.rows, model.spec.n_weights, model._loss_code, model.optimizer.code,
            self.hyper, model.l2, self.batch_size, self.shuffle, steps, *self.extra)

    def validation_loss(self):
        return self.model._loss(*self.validation)

    def restore_if_overflowed(self):
        """After a failed step: if an update overflowed the weights themselves, go back to
        the copy taken when the last compiled call started; True if it did."""
        if np.isfinite(self.ws.params).all():
            return False
        self.ws.restore_backup()
        return True


def _raise_nonfinite(run, status, done, steps_per_epoch):
    epoch, batch = divmod(done, steps_per_epoch)
    where = f"at epoch {epoch + 1}, batch {batch + 1}"
    what = "the training loss" if status == cpu_train.NONFINITE_LOSS else "a gradient"
    if run.restore_if_overflowed():
        message = (f"{what} became NaN or infinite {where} after an update overflowed the "
                   f"weights; training stopped and the model was restored to its weights from "
                   f"the start of the last compiled run (at most ~{QUIET_INTERVAL:g} s of "
                   f"training earlier)")
    else:
        message = (f"{what} became NaN or infinite {where}; training stopped and the model "
                   f"keeps the weights from before that step")
    raise FloatingPointError(f"{message}. Lower the learning rate, scale the inputs, or add "
                             f"l2 regularisation.")
