"""The fit loop: hands a backend's compiled train_steps whole runs of minibatches.

`fit` drives any backend (cpu/backend.py, cuda/backend.py) through its methods alone and
imports neither twin; the model has validated every input before it calls fit.

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
from .history import History
from .status import OK, describe

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


def fit(backend, X, T, *, epochs, batch_size, shuffle, validation, progress, loss, optimizer,
        l2):
    """Train the backend's model on (X, T) (the kernels' arrays); returns a History.

    validation: None or (X_val, T_val); loss: a loss code; optimizer: an
    optimizers.Optimizer."""
    n = X.shape[0]
    batch_size = min(batch_size, n)
    spec = backend.spec
    n_layers = len(spec.layers)
    history = History(grad_norms=np.zeros((0, n_layers)))
    if epochs == 0:
        return history

    epoch_seconds = np.zeros(epochs)
    val_loss = []
    backend.begin_fit(X, T, batch_size, shuffle, epochs, loss, optimizer, l2, validation)
    epoch_loss, epoch_grad_norm = backend.epoch_loss, backend.epoch_grad_norm
    run = backend
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
    first = min(FIRST_QUIET_STEPS, FIRST_QUIET_FLOPS // spec.flops_per_step(batch_size))
    chunk = 1 if progress else _quiet_chunk(int(first), steps_per_epoch)
    with blas_threads(config.BLAS_THREADS if backend.device == "cpu" else None):
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
                if status != OK:
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


def _raise_nonfinite(run, status, done, steps_per_epoch):
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
    raise FloatingPointError(f"{message}. Lower the learning rate, scale the inputs, or add "
                             f"l2 regularisation.")
