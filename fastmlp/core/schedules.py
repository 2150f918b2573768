"""Learning-rate schedules, applied inside the compiled training loop.

A schedule multiplies the optimizer's learning rate (its `lr`, the base rate) by a factor
computed at every update from a code, a few float64 parameters and the schedule's counters;
no Python runs per step. The CPU kernel (cpu/steps.py) calls `scheduled_lr` before each
update and `advance` after it; the CUDA host does the same per launch, so both devices use
the same numbers.

    Constant()                           lr
    InverseScaling(power, "steps")       lr / t^power,      t = updates so far, this one included
    InverseScaling(power, "samples")     lr / (s + 1)^power, s = samples seen before this epoch
                                         (scikit-learn's invscaling: changes at epoch ends)
    StepDecay(step_size, gamma)          lr * gamma^floor(e / step_size)
    Exponential(gamma)                   lr * gamma^e
    Cosine(total_epochs=E | total_steps=S, warmup=w, min_factor=f)
                                         t < w: lr * (t + 1) / w  (linear warm-up)
                                         else:  lr * (f + (1 - f) (1 + cos(pi p)) / 2),
                                                p = min((t - w) / (total - w), 1)
    ReduceOnPlateau(factor, patience, tol, min_lr, monitor)
                                         lr, divided by 1/factor by epoch_end() (scikit-learn's
                                         adaptive)

where e is the number of epochs completed before the update (0 during the first) and, for
Cosine, t is e (total_epochs) or the number of updates before this one (total_steps).

The counters live in the schedule's `state` (float64, laid out by the indices below) and the
compiled loop writes them in place: updates applied (STEPS), epochs completed (EPOCHS),
samples seen (SAMPLES), samples seen when the current epoch began (EPOCH_START), the
learning rate of the last update (LAST_LR), and ReduceOnPlateau's current rate and record
(LR, BEST, BAD_EPOCHS). Passing the same schedule object to consecutive fits continues them
(a second fit is then one longer fit); `reset()` starts over. A schedule belongs to one model:
two models must not share one object.

ReduceOnPlateau cannot be computed inside the loop: the driver calls `epoch_end(loss)` at
every epoch end (`needs_epoch_end` says which schedules want it; monitor="callback" leaves
the call to a fit callback) before the next epoch's first update; it returns True when
training should stop (scikit-learn's rule: the loss did not improve for `patience` epochs
while the rate is already at or below `min_lr`).

The two scikit-learn rules are its own, step for step (tests/test_schedules.py runs its code
beside them): fastmlp.sklearn trains solver="sgd" with learning_rate="invscaling" under
InverseScaling(power_t, "samples") and "adaptive" under ReduceOnPlateau(0.2,
n_iter_no_change, tol, 1e-6, "callback"), in one fit. What differs is the optimizer, not
the rule: scikit-learn's SGD folds the rate into its momentum buffer and fastmlp's (as
torch's) does not, the same steps while the rate holds, not across a change.
"""
import math

import numpy as np

from ..config import jit
from ..inputs.numbers import check_real, check_whole

CONSTANT, INVERSE_SCALING, STEP_DECAY, EXPONENTIAL, COSINE, PLATEAU = range(6)
CODES = (CONSTANT, INVERSE_SCALING, STEP_DECAY, EXPONENTIAL, COSINE, PLATEAU)
#: Length of the float64 parameter vector every schedule hands the kernels.
N_PARAMS = 4
# Layout of a schedule's float64 state vector.
STEPS, EPOCHS, SAMPLES, EPOCH_START, LAST_LR, LR, BEST, BAD_EPOCHS, N_STATE = range(9)
# InverseScaling's counter and Cosine's unit, as the kernels take them.
BY_STEPS, BY_SAMPLES, BY_EPOCHS = 0.0, 1.0, 2.0


@jit
def scheduled_lr(code, params, state, base_lr):
    """The learning rate of the next update: base_lr times the schedule's factor, from the
    counters in state (see the module docstring for each closed form)."""
    if code == CONSTANT:
        return base_lr
    if code == INVERSE_SCALING:
        if params[1] == BY_SAMPLES:
            return base_lr / (state[EPOCH_START] + 1.0) ** params[0]
        return base_lr / (state[STEPS] + 1.0) ** params[0]
    if code == STEP_DECAY:
        return base_lr * params[1] ** math.floor(state[EPOCHS] / params[0])
    if code == EXPONENTIAL:
        return base_lr * params[0] ** state[EPOCHS]
    if code == COSINE:
        total, warmup, min_factor = params[0], params[1], params[2]
        t = state[EPOCHS] if params[3] == BY_EPOCHS else state[STEPS]
        if t < warmup:
            return base_lr * (t + 1.0) / warmup
        progress = min((t - warmup) / max(total - warmup, 1.0), 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return base_lr * (min_factor + (1.0 - min_factor) * cosine)
    if code == PLATEAU:
        return state[LR] if state[LR] > 0 else base_lr
    # a code in CODES without a branch here must not train at another rate
    raise ValueError("schedules.scheduled_lr: unknown schedule code")


@jit
def advance(state, lr, rows, applied, epoch_ended):
    """The counters after a step of `rows` rows at rate lr: an applied update counts as a
    step; the rows count as seen even when the step was skipped (a batch of zero weight)."""
    if applied:
        state[STEPS] += 1.0
        state[LAST_LR] = lr
    state[SAMPLES] += rows
    if epoch_ended:
        state[EPOCHS] += 1.0
        state[EPOCH_START] = state[SAMPLES]


@jit
def _rows_before(position, n, batch_size, n_batches):
    """Rows seen in the first `position` steps of a fit from its start (epochs of n rows in
    n_batches batches, the last one short)."""
    return (position // n_batches) * n + min((position % n_batches) * batch_size, n)


@jit
def replay_constant_steps(schedule_state, epoch_lr, cursor, done, n, batch_size, lr):
    """The schedule counters and epoch_lr after `done` steps at the constant rate lr from
    cursor [epoch, batch] (not moved): what the generic loops record, for the kernels that
    train at a constant rate and keep no such record (cpu/codegen.py's, the CUDA fused
    ones). In closed form, not per step: the generated kernels run a step in ~0.1 us."""
    if done <= 0:
        return
    n_batches = (n + batch_size - 1) // batch_size
    start = cursor[0] * n_batches + cursor[1]
    stop = start + done
    seen = schedule_state[SAMPLES] - _rows_before(start, n, batch_size, n_batches)
    schedule_state[STEPS] += done
    schedule_state[LAST_LR] = lr
    schedule_state[SAMPLES] = seen + _rows_before(stop, n, batch_size, n_batches)
    ended = stop // n_batches - start // n_batches
    if ended > 0:
        schedule_state[EPOCHS] += ended
        schedule_state[EPOCH_START] = seen + (stop // n_batches) * n
    for epoch in range(start // n_batches, (stop - 1) // n_batches + 1):
        epoch_lr[epoch] = lr


class Schedule:
    """Base class: a code, a parameter vector and the counters (see the module docstring)."""
    #: the integer code the kernels dispatch on (one of CODES)
    code = None
    #: True when the driver must call epoch_end(loss) at every epoch end
    needs_epoch_end = False
    _fields = ()

    def __init__(self):
        self.state = np.zeros(N_STATE)
        self.reset()

    def params(self):
        """The float64 vector of N_PARAMS parameters the kernels read."""
        return np.zeros(N_PARAMS)

    def reset(self):
        """Start the counters (and any plateau record) over, as for a fresh model."""
        self.state[:] = 0.0
        self.state[LAST_LR] = math.nan
        self.state[BEST] = math.inf

    def lr(self, base_lr):
        """The rate the next update will use, for an optimizer whose lr is base_lr."""
        return float(scheduled_lr(self.code, self.params(), self.state, float(base_lr)))

    def epoch_end(self, loss):
        """Called by the driver at an epoch end with the monitored loss (lower is better);
        returns True when training should stop. Only ReduceOnPlateau acts on it."""
        return False

    def config(self):
        """JSON-able settings, enough to rebuild the schedule (see from_config); the
        counters are not part of it."""
        return {"name": type(self).__name__, **{k: getattr(self, k) for k in self._fields}}

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.config() == other.config()

    __hash__ = None


class Constant(Schedule):
    """The optimizer's lr at every update."""
    code = CONSTANT


class InverseScaling(Schedule):
    """lr / t^power. counter="steps": t counts the updates so far, this one included (the
    first update runs at lr). counter="samples": scikit-learn's invscaling, lr / (s + 1)^power
    with s the samples seen before the current epoch, so the rate changes at epoch ends only
    and the first epoch runs at lr."""
    code = INVERSE_SCALING
    _fields = ("power", "counter")

    def __init__(self, power=0.5, counter="steps"):
        self.power = check_real(power, "InverseScaling: power", 0.0)
        if counter not in ("steps", "samples"):
            raise ValueError(f"InverseScaling: counter must be 'steps' or 'samples' (scikit-"
                             f"learn's invscaling); got {counter!r}")
        self.counter = counter
        super().__init__()

    def params(self):
        return np.array([self.power, BY_SAMPLES if self.counter == "samples" else BY_STEPS,
                         0.0, 0.0])

    def restart_rate(self):
        """The next update runs at the optimizer's lr again; the samples seen go on, so the
        epoch after it runs at lr / (s + 1)^power with s counted from the first fit:
        scikit-learn's warm start (a new optimizer, the same t_). counter="steps" starts its
        count over."""
        if self.counter == "samples":
            self.state[EPOCH_START] = 0.0
        else:
            self.state[STEPS] = 0.0


class StepDecay(Schedule):
    """lr * gamma^floor(e / step_size), e the epochs completed (torch's StepLR, per epoch)."""
    code = STEP_DECAY
    _fields = ("step_size", "gamma")

    def __init__(self, step_size, gamma=0.1):
        self.step_size = check_whole(step_size, "StepDecay: step_size", 1.0)
        self.gamma = check_real(gamma, "StepDecay: gamma", 0.0)
        super().__init__()

    def params(self):
        return np.array([float(self.step_size), self.gamma, 0.0, 0.0])


class Exponential(Schedule):
    """lr * gamma^e, e the epochs completed (torch's ExponentialLR, per epoch)."""
    code = EXPONENTIAL
    _fields = ("gamma",)

    def __init__(self, gamma):
        self.gamma = check_real(gamma, "Exponential: gamma", 0.0)
        super().__init__()

    def params(self):
        return np.array([self.gamma, 0.0, 0.0, 0.0])


class Cosine(Schedule):
    """Cosine annealing from lr to min_factor * lr over total_epochs epochs or total_steps
    updates (give exactly one), after an optional linear warm-up of `warmup` epochs or
    updates (the same unit) that rises to lr at its last one; min_factor * lr after the end."""
    code = COSINE
    _fields = ("total_epochs", "total_steps", "warmup", "min_factor")

    def __init__(self, total_epochs=None, total_steps=None, warmup=0, min_factor=0.0):
        if (total_epochs is None) == (total_steps is None):
            raise ValueError("Cosine: give exactly one of total_epochs and total_steps")
        total = total_epochs if total_steps is None else total_steps
        name = "total_epochs" if total_steps is None else "total_steps"
        total = check_whole(total, f"Cosine: {name}", 1.0)
        self.total_epochs = total if total_steps is None else None
        self.total_steps = total if total_epochs is None else None
        self.warmup = check_whole(warmup, "Cosine: warmup")
        if self.warmup > total:
            raise ValueError(f"Cosine: warmup ({self.warmup}) must not exceed {name} ({total})")
        self.min_factor = check_real(min_factor, "Cosine: min_factor", 0.0, 1.0)
        super().__init__()

    def params(self):
        by_epochs = self.total_epochs is not None
        total = self.total_epochs if by_epochs else self.total_steps
        return np.array([float(total), float(self.warmup), self.min_factor,
                         BY_EPOCHS if by_epochs else BY_STEPS])


class ReduceOnPlateau(Schedule):
    """scikit-learn's `adaptive` rate: at each epoch end, the monitored loss counts as a bad
    epoch unless it is below the best so far minus tol; after more than `patience` bad epochs
    in a row the rate is divided by 1/factor (by 5 for the default 0.2, as scikit-learn) and
    the count starts over, or, if the rate is already <= min_lr, epoch_end returns True (stop).
    scikit-learn's MLP passes patience=n_iter_no_change, tol=tol, min_lr=1e-6; for its
    validation score (higher is better) pass -score. patience=math.inf never acts;
    min_lr=math.inf stops at the first plateau instead of reducing (scikit-learn's
    tol / n_iter_no_change rule of the other learning rates).

    monitor="loss": the fit loop calls epoch_end with the validation loss (the training loss
    without validation data). monitor="callback": the loop leaves it alone and a fit callback
    calls epoch_end with a value of its own (fastmlp.sklearn feeds its scikit-learn loss or
    -score)."""
    code = PLATEAU
    _fields = ("factor", "patience", "tol", "min_lr", "monitor")

    def __init__(self, factor=0.2, patience=10, tol=1e-4, min_lr=1e-6, monitor="loss"):
        self.factor = check_real(factor, "ReduceOnPlateau: factor", 0.0, 1.0, low_open=True)
        self.patience = patience if patience == math.inf and not isinstance(patience, bool) \
            else check_whole(patience, "ReduceOnPlateau: patience")
        self.tol = check_real(tol, "ReduceOnPlateau: tol", 0.0)
        self.min_lr = check_real(min_lr, "ReduceOnPlateau: min_lr", 0.0, allow_inf=True)
        if monitor not in ("loss", "callback"):
            raise ValueError(f"ReduceOnPlateau: monitor must be 'loss' (the fit loop calls "
                             f"epoch_end) or 'callback' (a fit callback does); got {monitor!r}")
        self.monitor = monitor
        #: the fit loop calls epoch_end only for monitor="loss"
        self.needs_epoch_end = monitor == "loss"
        super().__init__()

    def params(self):
        return np.array([self.factor, float(self.patience), self.tol, self.min_lr])

    @property
    def rate(self):
        """The current rate (0 before the first fit sets it from the optimizer's lr)."""
        return float(self.state[LR])

    @property
    def best(self):
        """The lowest monitored value so far (inf before any)."""
        return float(self.state[BEST])

    def start(self, base_lr):
        """Take the optimizer's lr as the current rate unless a fit has set it already (the
        backends call this in begin_fit)."""
        if not self.state[LR] > 0:
            self.state[LR] = float(base_lr)

    def restart_rate(self):
        """The next fit starts again from its optimizer's lr; the record (best value, bad
        epochs) goes on: scikit-learn's warm start, a new optimizer on the same record."""
        self.state[LR] = 0.0

    def epoch_end(self, loss):
        # The comparisons are scikit-learn's _update_no_improvement_count and
        # SGDOptimizer.trigger_stopping, in its order (a NaN loss resets the count there too).
        state = self.state
        loss = float(loss)
        if loss > state[BEST] - self.tol:
            state[BAD_EPOCHS] += 1
        else:
            state[BAD_EPOCHS] = 0
        if loss < state[BEST]:
            state[BEST] = loss
        if state[BAD_EPOCHS] > self.patience:
            if state[LR] <= self.min_lr:
                return True
            state[LR] /= 1.0 / self.factor  # repeated division, as lr /= 5.0
            state[BAD_EPOCHS] = 0
        return False


SCHEDULES = {cls.__name__: cls for cls in (Constant, InverseScaling, StepDecay, Exponential,
                                           Cosine, ReduceOnPlateau)}


def current_lr(schedule, base_lr):
    """The learning rate of the most recent update under `schedule` (of the next one before
    any), base_lr being the optimizer's; None for no schedule (no fit has begun)."""
    if schedule is None:
        return None
    last = schedule.state[LAST_LR]
    if math.isfinite(last):
        return float(last)
    return schedule.lr(base_lr)


def check_schedule(schedule):
    """None -> Constant(); a Schedule as is; anything else a TypeError."""
    if schedule is None:
        return Constant()
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be None or a fastmlp.schedules schedule "
                        f"({', '.join(SCHEDULES)}); got {type(schedule).__name__}")
    return schedule


def from_config(config):
    config = dict(config)
    name = config.pop("name")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](**config)
