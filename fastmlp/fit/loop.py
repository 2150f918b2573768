"""The fit loop: hands a backend's compiled train_steps whole runs of minibatches.

`fit` drives any backend (cpu/backend.py, cuda/backend.py) through its methods alone and
imports neither twin; the model has validated every input before it calls fit.

Python returns from compiled code only to update the progress bar (about every
config.PROGRESS_INTERVAL seconds), at epoch ends when there is validation data, or about once
a second otherwise; Ctrl-C is seen at those returns, i.e. between two whole batches.
"""
import math
import time
import warnings

import numpy as np

from ..core.blas import limit_threads
from ..config import PROGRESS_INTERVAL
from .epochlog import EpochLog
from .history import History
from ..core.status import OK, describe

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


class StopTraining(Exception):
    """Raise in a callback to end training after the current epoch (as returning False)."""


#: Epochs whose statistics one begin_fit holds: a longer fit runs in segments, so that memory
#: follows the epochs completed, never the epochs asked for.
SEGMENT_EPOCHS = 1 << 16


class EarlyStopping:
    """Stop when the monitored loss (validation loss, else training loss) has not improved
    by more than min_delta for `patience` epochs; optionally restore the best epoch's
    weights and optimizer state."""

    def __init__(self, patience, min_delta, restore_best_weights):
        self.patience, self.min_delta = patience, min_delta
        self.restore = restore_best_weights
        self.best, self.best_epoch, self.wait, self.snapshot = math.inf, None, 0, None

    def epoch_end(self, epoch, monitored, backend):
        """True when training should stop after this epoch."""
        if monitored < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = monitored, epoch, 0
            if self.restore:
                self.snapshot = backend.get_state()
            return False
        self.wait += 1
        return self.wait >= self.patience


def fit(backend, X, T, *, epochs, batch_size, shuffle, validation, progress, loss, optimizer,
        l2, weights=None, schedule=None, l2_per_sample=False, early_stopping=None,
        callbacks=(), owner=None, accuracy=None):
    """Train the backend's model on (X, T) (the kernels' arrays); returns a History.

    validation: None or (X_val, T_val[, W_val]); loss: a loss code; optimizer: an
    optimizers.Optimizer; weights: None or per-row sample weights; schedule: None or a
    schedules.Schedule; early_stopping: None or an EarlyStopping; callbacks: callables
    cb(owner, history) run at each epoch end (False or StopTraining ends training);
    accuracy: None or fn(X, T, W) -> accuracy on the validation data (classifiers).
    A FloatingPointError carries the History of the epochs completed before it (.history).
    """
    n = X.shape[0]
    batch_size = min(batch_size, n)
    spec = backend.spec
    log = EpochLog(len(spec.layers))
    if epochs == 0:
        return _history(log)
    steps_per_epoch = math.ceil(n / batch_size)
    epoch_hook = bool(validation is not None or early_stopping is not None or callbacks
                      or (schedule is not None and schedule.needs_epoch_end))
    interval = PROGRESS_INTERVAL if progress else QUIET_INTERVAL
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * n, unit="samples", unit_scale=True, leave=True,
                   desc=f"epoch 1/{epochs}")
    first = min(FIRST_QUIET_STEPS, FIRST_QUIET_FLOPS // spec.flops_per_step(batch_size))
    chunk = 1 if progress else _quiet_chunk(int(first), steps_per_epoch)
    stop = False
    try:
        with limit_threads(backend.blas_limit):
            for seg_start in range(0, epochs, SEGMENT_EPOCHS):
                seg_epochs = min(SEGMENT_EPOCHS, epochs - seg_start)
                backend.begin_fit(X, T, batch_size, shuffle, seg_epochs, loss, optimizer, l2,
                                  validation, weights=weights, schedule=schedule,
                                  l2_per_sample=l2_per_sample, fit_epochs=epochs)
                seg = _Segment(backend, seg_start, seg_epochs, steps_per_epoch)
                if seg_start == 0:
                    _compile(backend, bar, log, epochs * n, epochs)
                while seg.done < seg.total and not stop:
                    steps = min(chunk, seg.total - seg.done)
                    if epoch_hook:  # stop at the epoch's end to evaluate
                        steps = min(steps, steps_per_epoch - seg.done % steps_per_epoch)
                    start = time.perf_counter()
                    try:
                        status, ran = backend.train_steps(steps)
                    except KeyboardInterrupt:
                        seg.interrupted(time.perf_counter() - start)
                        raise
                    elapsed = time.perf_counter() - start
                    before = seg.done
                    seg.advance(ran, elapsed)
                    if status != OK:
                        _add_epochs(log, seg, n)
                        _raise_nonfinite(backend, status, seg_start * steps_per_epoch + seg.done,
                                         steps_per_epoch, _history(log))
                    if epoch_hook and seg.done % steps_per_epoch == 0:
                        stop = _epoch_end(backend, log, seg, n, validation, early_stopping,
                                          schedule, callbacks, owner, accuracy)
                    if bar is not None:
                        _update_bar(bar, seg.done - before, seg.done, steps_per_epoch,
                                    batch_size, n, epochs, backend.epoch_loss, seg_start)
                    per_step = elapsed / max(ran, 1)
                    chunk = int(max(1, min(chunk * 10, interval / max(per_step, 1e-9))))
                    if not progress:
                        chunk = _quiet_chunk(chunk, steps_per_epoch)
                if not epoch_hook:
                    _add_epochs(log, seg, n)
                if stop:
                    break
    except KeyboardInterrupt:
        log.interrupted = True
        _add_epochs(log, seg, n)
        warnings.warn(f"fastmlp: training interrupted after {log.epochs} whole epoch(s); the "
                      f"model keeps the weights of the last whole batch", RuntimeWarning,
                      stacklevel=3)
    finally:
        if bar is not None:
            bar.close()
    history = _history(log)
    if early_stopping is not None:
        history.best_epoch = early_stopping.best_epoch
        history.stopped_early = stop and early_stopping.wait >= early_stopping.patience
        if early_stopping.restore and early_stopping.snapshot is not None:
            backend.set_state(early_stopping.snapshot)
    return history


#: What the progress bar says while the kernels compile.
COMPILING = "compiling kernels (first run only)"


def _compile(backend, bar, log, total, epochs):
    """Compile the fit's kernels (or load them from numba's disk cache) before anything is
    timed: a call of 0 steps trains nothing but needs them. Its time is
    History.compile_seconds, never an epoch's; the bar says so meanwhile, then starts its
    clock afresh so that its rate and ETA leave the compile out."""
    ready = getattr(backend, "kernels_ready", None)
    if bar is not None and ready is not None and not ready():
        bar.set_description(COMPILING)
    start = time.perf_counter()
    backend.train_steps(0)
    log.compile_seconds += time.perf_counter() - start
    if bar is not None:
        bar.reset(total=total)
        bar.set_description(f"epoch 1/{epochs}", refresh=False)


def _epoch_end(backend, log, seg, n, validation, early_stopping, schedule, callbacks, owner,
               accuracy):
    """The work at an epoch's end; True when training should stop."""
    epoch = log.epochs  # the 0-based index of the epoch that just ended
    done = seg.done // seg.steps_per_epoch
    train_loss = backend.epoch_loss[done - 1] / n
    extra = {}
    if validation is not None:
        extra["val_loss"] = [backend.validation_loss()]
        if accuracy is not None:
            extra["val_accuracy"] = [accuracy(*validation)]
    _add_epochs(log, seg, n, upto=done, **extra)
    monitored = extra["val_loss"][0] if validation is not None else train_loss
    stop = False
    if schedule is not None and schedule.needs_epoch_end:
        # True when scikit-learn's adaptive rule would stop: no improvement while the rate
        # is already at its floor
        stop = bool(schedule.epoch_end(monitored))
    if early_stopping is not None:
        stop = early_stopping.epoch_end(epoch, monitored, backend) or stop
    if callbacks:
        history = _history(log)
        for callback in callbacks:
            try:
                if callback(owner, history) is False:
                    stop = True
            except StopTraining:
                stop = True
    if hasattr(backend, "any_rank"):  # data-parallel: every rank stops if one does
        stop = backend.any_rank(stop)
    return stop


class _Segment:
    """Step accounting of one begin_fit: steps done, and wall time spread over epochs."""

    def __init__(self, backend, first_epoch, epochs, steps_per_epoch):
        self.backend, self.first_epoch = backend, first_epoch
        self.steps_per_epoch = steps_per_epoch
        self.total = epochs * steps_per_epoch
        self.done = 0
        self.seconds = np.zeros(epochs)
        self.taken = 0  # epochs of this segment already moved into the log

    def advance(self, ran, elapsed):
        # Spread a call's wall time evenly over the steps it ran: whole epochs get
        # steps_per_epoch steps' worth, the first and last the part they ran (in O(1)
        # Python: an xor call runs a hundred thousand one-step epochs).
        if ran:
            per_step = elapsed / ran
            spe = self.steps_per_epoch
            first, last = self.done // spe, (self.done + ran - 1) // spe
            self.seconds[first:last + 1] += per_step * spe
            self.seconds[first] -= per_step * (self.done - first * spe)
            self.seconds[last] -= per_step * ((last + 1) * spe - self.done - ran)
        self.done += ran

    def interrupted(self, elapsed):
        """Ctrl-C during a compiled call: the steps it ran are read from the backend."""
        epoch, batch = self.backend.cursor()
        ran = epoch * self.steps_per_epoch + batch - self.done
        self.advance(max(ran, 0), elapsed)


def _add_epochs(log, seg, n, upto=None, **extra):
    """Move the segment's completed epochs (up to `upto`) into the log."""
    upto = min(seg.done // seg.steps_per_epoch if upto is None else upto, len(seg.seconds))
    lo = seg.taken
    if upto <= lo:
        return
    backend = seg.backend
    lr = getattr(backend, "epoch_lr", None)
    log.add(loss=backend.epoch_loss[lo:upto] / n,
            grad_norms=backend.epoch_grad_norm[lo:upto] / seg.steps_per_epoch,
            seconds=seg.seconds[lo:upto], lr=lr[lo:upto] if lr is not None else (), **extra)
    seg.taken = upto


def _history(log):
    h = History(loss=log.series("loss"), grad_norms=log.series("grad_norms"),
                seconds=log.series("seconds"), val_loss=log.series("val_loss"))
    h.lr = log.series("lr")
    h.val_accuracy = log.series("val_accuracy")
    h.interrupted = log.interrupted
    h.compile_seconds = log.compile_seconds
    h.completed, h.epoch_stride = log.epochs, log.stride
    return h


def _samples(steps, steps_per_epoch, batch_size, n):
    """Samples seen after `steps` steps (the last batch of an epoch may be short)."""
    whole, part = divmod(steps, steps_per_epoch)
    return whole * n + min(part * batch_size, n)


def _update_bar(bar, ran, done, steps_per_epoch, batch_size, n, epochs, epoch_loss,
                first_epoch=0):
    whole, part = divmod(done, steps_per_epoch)
    if part == 0:  # an epoch just ended: show its mean loss
        epoch, seen = whole - 1, n
    else:
        epoch, seen = whole, min(part * batch_size, n)
    bar.set_description(f"epoch {first_epoch + epoch + 1}/{epochs}", refresh=False)
    bar.set_postfix(loss=f"{epoch_loss[epoch] / seen:.4g}", refresh=False)
    bar.update(_samples(done, steps_per_epoch, batch_size, n)
               - _samples(done - ran, steps_per_epoch, batch_size, n))


def _raise_nonfinite(run, status, done, steps_per_epoch, history):
    epoch, batch = divmod(done, steps_per_epoch)
    where = f"at epoch {epoch + 1}, batch {batch + 1}"
    what = describe(status)
    if run.restore_if_overflowed():
        message = (f"{what} became NaN or infinite {where} after an update overflowed the "
                   f"weights; training stopped and the model was restored to its weights from "
                   f"the start of the last compiled run (at most ~{QUIET_INTERVAL:g} s of "
                   f"training earlier)")
    else:
        message = (f"{what} became NaN or infinite {where}; training stopped and the model "
                   f"keeps the weights from before that step")
    error = FloatingPointError(f"{message}. Lower the learning rate, scale the inputs, or "
                               f"add l2 regularisation.")
    error.history = history  # the epochs completed before it
    raise error
