"""The fit loop: drives any Run (fit/protocols.py) through its members alone.

The data path of one fit:

  MLP.fit --checks--> FitPlan (fit/plan.py: rows, objective, optimizer, schedule, ...)
    -> start_run: a full-batch optimizer (L-BFGS) gets an LbfgsRun over the backend's
       loss_rows/gradient_rows (fit/lbfgs.py); any other backend.start(plan): CpuRun,
       CudaRun, or MpiRun (a CpuRun stepped with the other ranks, cpu/mpi.py)
    -> run.train_steps(0) compiles; then run.train_steps(n) hands the compiled kernel whole
       runs of minibatches (shuffle, gather, forward, backward, update, all compiled)
    -> at epoch ends (when the plan needs them): validation loss, schedule, early stopping,
       callbacks, and the ranks' agreement to stop
    -> History from the run's per-epoch statistics; run.close().

Python returns from compiled code only to update the progress bar (about every
config.PROGRESS_INTERVAL seconds), at epoch ends when the plan needs them, or about once a
second otherwise; Ctrl-C is seen at those returns, i.e. between two whole batches. A fit of
more than plan.SEGMENT_EPOCHS epochs runs in segments, so that its statistics' memory stays
bounded. The loop imports neither twin.
"""
import math
import time
import warnings

import numpy as np

from ..config import PROGRESS_INTERVAL
from .epochlog import EpochLog
from .history import History
from .lbfgs import LbfgsRun
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


class EarlyStopping:
    """The state of a plan's EarlyStoppingRule during one fit: the best monitored loss, its
    epoch, the epochs since, and (with rule.restore) the backend's state at the best."""

    def __init__(self, rule):
        self.patience, self.min_delta, self.restore = rule.patience, rule.min_delta, \
            rule.restore
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


def start_run(backend, plan):
    """The Run of one fit: an LbfgsRun for a full-batch plan, else the backend's own."""
    return LbfgsRun(backend, plan) if plan.full_batch else backend.start(plan)


def fit(backend, plan, owner=None, accuracy=None):
    """Train the backend's model by `plan` (fit/plan.FitPlan); returns a History.

    owner: what callbacks receive (cb(owner, history) at each epoch end; False or
    StopTraining ends training); accuracy: None or fn(X, T, W) -> accuracy on the validation
    rows (classifiers). A FloatingPointError carries the History of the epochs completed
    before it (.history).
    """
    n, epochs = plan.n, plan.epochs
    spe = plan.steps_per_epoch
    log = EpochLog(len(backend.spec.layers))
    if epochs == 0:
        return _history(log)
    stopper = None if plan.early_stopping is None else EarlyStopping(plan.early_stopping)
    epoch_hook = plan.needs_epoch_end
    interval = PROGRESS_INTERVAL if plan.progress else QUIET_INTERVAL
    bar = None
    if plan.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * n, unit="samples", unit_scale=True, leave=True,
                   desc=f"epoch 1/{epochs}")
    first = min(FIRST_QUIET_STEPS, FIRST_QUIET_FLOPS // backend.spec.flops_per_step(
        plan.batch_size))
    chunk = 1 if plan.progress else _quiet_chunk(int(first), spe)
    stop = False
    seg = None
    run = start_run(backend, plan)
    try:
        seg_start = 0
        for seg_epochs in plan.segments():
            if seg_start:
                run.next_segment(seg_epochs)
            seg = _Segment(run, seg_start, seg_epochs, spe)
            if seg_start == 0:
                _compile(run, bar, log, epochs * n, epochs)
            while seg.done < seg.total and not stop and not run.finished():
                steps = min(chunk, seg.total - seg.done)
                if epoch_hook:  # stop at the epoch's end to evaluate
                    steps = min(steps, spe - seg.done % spe)
                start = time.perf_counter()
                try:
                    status, ran = run.train_steps(steps)
                except KeyboardInterrupt:
                    seg.interrupted(time.perf_counter() - start)
                    raise
                elapsed = time.perf_counter() - start
                before = seg.done
                seg.advance(ran, elapsed)
                # A last update that overflowed the weights shows in no loss of this call:
                # looked for here, before anything reads the weights or backs them up.
                if status != OK or (ran and run.restore_if_overflowed()):
                    _add_epochs(log, seg, n)
                    _raise_nonfinite(run, status, seg_start * spe + seg.done, spe,
                                     _history(log))
                if epoch_hook and ran and seg.done % spe == 0:
                    stop = _epoch_end(backend, run, plan, log, seg, stopper, owner, accuracy)
                if bar is not None:
                    _update_bar(bar, seg.done - before, seg.done, spe, plan.batch_size, n,
                                epochs, run.epoch_loss, seg_start)
                per_step = elapsed / max(ran, 1)
                chunk = int(max(1, min(chunk * 10, interval / max(per_step, 1e-9))))
                if not plan.progress:
                    chunk = _quiet_chunk(chunk, spe)
            if not epoch_hook:
                _add_epochs(log, seg, n)
            if stop or run.finished():
                break
            seg_start += seg_epochs
    except KeyboardInterrupt:
        log.interrupted = True
        if seg is not None:  # an epoch ended by the press was never validated: NaN says so
            _add_epochs(log, seg, n, unvalidated=plan.validation is not None,
                        accuracy=accuracy is not None)
        kept = ("its best epoch's weights (restore_best_weights)" if stopper is not None
                and stopper.restore and stopper.snapshot is not None
                else "the weights of the last whole batch")
        warnings.warn(f"fastmlp: training interrupted after {log.epochs} whole epoch(s); the "
                      f"model keeps {kept}", RuntimeWarning, stacklevel=3)
    finally:
        run.close()
        if bar is not None:
            bar.close()
    history = _history(log)
    run.annotate(history)
    if stopper is not None:
        history.best_epoch = stopper.best_epoch
        history.stopped_early = stop and stopper.wait >= stopper.patience
        if stopper.restore and stopper.snapshot is not None:
            backend.set_state(stopper.snapshot)
    return history


#: What the progress bar says while the kernels compile.
COMPILING = "compiling kernels (first run only)"


def _compile(run, bar, log, total, epochs):
    """Compile the fit's kernels (or load them from numba's disk cache) before anything is
    timed: a call of 0 steps trains nothing but needs them. Its time is
    History.compile_seconds, never an epoch's; the bar says so meanwhile, then starts its
    clock afresh so that its rate and ETA leave the compile out."""
    if bar is not None and not run.kernels_ready():
        bar.set_description(COMPILING)
    start = time.perf_counter()
    run.train_steps(0)
    log.compile_seconds += time.perf_counter() - start
    if bar is not None:
        bar.reset(total=total)
        bar.set_description(f"epoch 1/{epochs}", refresh=False)


def _epoch_end(backend, run, plan, log, seg, stopper, owner, accuracy):
    """The work at an epoch's end; True when training should stop (on every rank)."""
    epoch = log.epochs  # the 0-based index of the epoch that just ended
    done = seg.done // seg.steps_per_epoch
    train_loss = run.epoch_loss[done - 1] / plan.n
    extra = {}
    validation = plan.validation
    if validation is not None:
        extra["val_loss"] = [run.validation_loss()]
        if accuracy is not None:
            extra["val_accuracy"] = [accuracy(validation.X, validation.T,
                                              validation.weights)]
    _add_epochs(log, seg, plan.n, upto=done, **extra)
    monitored = extra["val_loss"][0] if validation is not None else train_loss
    stop = False
    schedule = plan.schedule
    if schedule is not None and schedule.needs_epoch_end:
        # True when scikit-learn's adaptive rule would stop: no improvement while the rate
        # is already at its floor
        stop = bool(schedule.epoch_end(monitored))
    if stopper is not None:
        stop = stopper.epoch_end(epoch, monitored, backend) or stop
    if plan.callbacks:
        history = _history(log)
        for callback in plan.callbacks:
            try:
                if callback(owner, history) is False:
                    stop = True
            except StopTraining:
                stop = True
    return run.agree_to_stop(stop)  # data-parallel: every rank stops if one does


class _Segment:
    """Step accounting of one segment: steps done, and wall time spread over epochs."""

    def __init__(self, run, first_epoch, epochs, steps_per_epoch):
        self.run, self.first_epoch = run, first_epoch
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
        """Ctrl-C during a compiled call: the steps it ran are read from the run."""
        epoch, batch = self.run.cursor()
        ran = epoch * self.steps_per_epoch + batch - self.done
        self.advance(max(ran, 0), elapsed)


def _add_epochs(log, seg, n, upto=None, unvalidated=False, accuracy=False, **extra):
    """Move the segment's completed epochs (up to `upto`) into the log; `unvalidated`:
    epochs that had validation rows but no end-of-epoch evaluation (NaN val_loss and, with
    `accuracy`, val_accuracy), so every series keeps one entry an epoch."""
    upto = min(seg.done // seg.steps_per_epoch if upto is None else upto, len(seg.seconds))
    lo = seg.taken
    if upto <= lo:
        return
    if unvalidated:
        extra = dict(extra, val_loss=np.full(upto - lo, np.nan))
        if accuracy:
            extra["val_accuracy"] = np.full(upto - lo, np.nan)
    run = seg.run
    log.add(loss=run.epoch_loss[lo:upto] / n,
            grad_norms=run.epoch_grad_norm[lo:upto] / seg.steps_per_epoch,
            seconds=seg.seconds[lo:upto], lr=run.epoch_lr[lo:upto], **extra)
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
    if status == OK:  # the call's steps were whole, but its last update overflowed
        epoch, batch = divmod(done - 1, steps_per_epoch)
        error = FloatingPointError(
            f"the weights became infinite in the update of epoch {epoch + 1}, batch "
            f"{batch + 1}; training stopped and the model was restored to its weights from "
            f"the start of the last compiled run (at most ~{QUIET_INTERVAL:g} s of training "
            f"earlier). Lower the learning rate, scale the inputs, or add l2 regularisation.")
        error.history = history
        raise error
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
