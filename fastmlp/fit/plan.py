"""One fit, decided once: MLP.fit checks its arguments here and builds a frozen FitPlan.

Everything a backend or a run reads about a fit is in the plan, checked once: the training
rows (X, T and sample weights, float64 or None), the validation rows, batch size, shuffle,
epochs, the Objective (loss code, l2 and its convention), the optimizer, the schedule, the
callbacks, early stopping and progress. Backends never check them again.
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.optimizers import LBFGS
from ..core.schedules import check_schedule
from ..inputs.numbers import check_bool, check_int, check_real
from ..inputs.split import split_validation

#: Epochs whose statistics one run holds at once: a longer fit runs in segments
#: (Run.next_segment), so that memory follows the epochs completed, not those asked for.
SEGMENT_EPOCHS = 1 << 16


@dataclass(frozen=True)
class Objective:
    """What a fit minimises and loss_rows/gradient_rows compute: the loss (a losses code),
    l2 and its convention. l2_per_sample False: (l2/2) sum ||W||^2 per batch; True:
    scikit-learn's alpha, 0.5 * l2 * sum ||W||^2 / (the batch's weight sum, its rows when
    unweighted)."""
    loss: int
    l2: float = 0.0
    l2_per_sample: bool = False


@dataclass(frozen=True)
class Rows:
    """Rows as the kernels take them: X (n, n_inputs), T (n, n_outputs), weights float64
    (n,) or None (unweighted)."""
    X: np.ndarray
    T: np.ndarray
    weights: Optional[np.ndarray] = None


@dataclass(frozen=True)
class EarlyStoppingRule:
    """Stop when the monitored loss has not improved by more than min_delta for `patience`
    epochs; restore: go back to the best epoch's state."""
    patience: int
    min_delta: float
    restore: bool


@dataclass(frozen=True)
class FitPlan:
    """One fit, checked. batch_size is at most the rows; epochs the whole fit's (for
    L-BFGS: its iterations, one full batch each); schedule None is the constant rate."""
    train: Rows
    validation: Optional[Rows]
    batch_size: int
    shuffle: bool
    epochs: int
    objective: Objective
    optimizer: object
    schedule: object = None
    callbacks: tuple = ()
    early_stopping: Optional[EarlyStoppingRule] = None
    progress: bool = False

    @property
    def n(self):
        """Training rows."""
        return self.train.X.shape[0]

    @property
    def steps_per_epoch(self):
        return -(-self.n // self.batch_size)

    @property
    def full_batch(self):
        """True for L-BFGS: scipy's iterations over all rows, not minibatch steps."""
        return isinstance(self.optimizer, LBFGS)

    @property
    def needs_epoch_end(self):
        """True when the loop must stop at every epoch's end (to validate, call back,
        watch for early stopping or step a per-epoch schedule)."""
        return bool(self.validation is not None or self.early_stopping is not None
                    or self.callbacks
                    or (self.schedule is not None and self.schedule.needs_epoch_end))

    def segments(self):
        """The epochs of each segment the fit runs in, in order."""
        return [min(SEGMENT_EPOCHS, self.epochs - start)
                for start in range(0, self.epochs, SEGMENT_EPOCHS)]

    def first_segment(self):
        """The epochs of the first segment, which Backend.start sets up."""
        return min(SEGMENT_EPOCHS, self.epochs)

    def quiet(self):
        """This plan without a progress bar (the MPI ranks other than 0)."""
        return dataclasses.replace(self, progress=False)


@dataclass(frozen=True)
class FitOptions:
    """fit's scalar arguments, checked before any data is read."""
    epochs: Optional[int]
    batch_size: int
    shuffle: bool
    progress: bool
    early_stopping: Optional[EarlyStoppingRule]
    callbacks: tuple
    schedule: object
    reset: bool


def check_options(spec, optimizer, *, epochs=None, batch_size=32, shuffle=True, progress=True,
                  early_stopping=False, patience=10, min_delta=0.0,
                  restore_best_weights=True, callbacks=None, schedule=None, reset=False,
                  validation_data=None, validation_split=None, distributed=False):
    """fit's arguments other than the data, checked (TypeError/ValueError saying what to
    change) before any data is read or anything compiled. epochs None: 1 for a minibatch
    optimizer, max_iter for LBFGS."""
    if epochs is None:
        epochs = optimizer.max_iter if isinstance(optimizer, LBFGS) else 1
    epochs = check_int(epochs, "epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    shuffle = check_bool(shuffle, "shuffle")
    progress = check_bool(progress, "progress")
    early_stopping = check_bool(early_stopping, "early_stopping")
    restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")
    reset = check_bool(reset, "reset")
    patience = check_int(patience, "patience", 1)
    min_delta = check_real(min_delta, "min_delta", 0.0)
    callbacks = check_callbacks(callbacks)
    schedule = None if schedule is None else check_schedule(schedule)
    frozen = spec.inference_only_layers()
    if frozen:
        names = ", ".join(f"layer {i} ({spec.layers[i].activation})" for i in frozen)
        raise ValueError(f"cannot fit a model with {names}: its derivative is zero almost "
                         f"everywhere, so gradients cannot train it; use sigmoid or relu "
                         f"to train, and 'step' only for hand-set weights with set_weights")
    if validation_split is not None and validation_data is not None:
        raise ValueError("give validation_data or validation_split, not both")
    if isinstance(optimizer, LBFGS):
        if distributed:
            raise ValueError("LBFGS trains full batch in one process: every rank "
                             "would compute the same steps; fit without comm")
        if schedule is not None:
            raise ValueError("LBFGS has no learning rate for a schedule to change; fit "
                             "without schedule, or use SGD, Adam or AdamW")
    rule = EarlyStoppingRule(patience, min_delta, restore_best_weights) \
        if early_stopping else None
    return FitOptions(epochs, batch_size, shuffle, progress, rule, callbacks, schedule, reset)


def make_plan(model, options, X, T, W, validation_data=None, validation_split=None):
    """The FitPlan of checked training rows (X, T, W: the model's as_arrays) and options;
    validation_data is checked here (model.as_arrays), validation_split held out of the
    rows (stratified for classifiers, seeded by the model's seed)."""
    validation = None
    if validation_split is not None:
        X, T, W, held = split_validation(X, T, W, validation_split, model.seed,
                                         model.is_classifier)
        validation = Rows(*held)
    elif validation_data is not None:
        validation = Rows(*validation_arrays(model, validation_data))
    n = X.shape[0]
    batch_size = n if isinstance(model.optimizer, LBFGS) else min(options.batch_size, n)
    return FitPlan(Rows(X, T, W), validation, batch_size, options.shuffle, options.epochs,
                   model.objective, model.optimizer, options.schedule, options.callbacks,
                   options.early_stopping, options.progress)


def plan_for(model, X, y, sample_weight=None, validation_data=None, validation_split=None,
             **options):
    """The FitPlan model.fit(X, y, ...) would train by (options: fit's keyword arguments;
    progress off unless asked), without training: for Backend.start in diagnostics,
    benchmarks and tests. Rows are checked by model.as_arrays, so class labels map through
    the model's classes_ (labels 0..k-1 index the outputs directly)."""
    options.setdefault("progress", False)
    options = check_options(model.spec, model.optimizer, validation_data=validation_data,
                            validation_split=validation_split, **options)
    rows = model.as_arrays(X, y, sample_weight=sample_weight)
    X, T, W = rows if sample_weight is not None else (*rows, None)
    return make_plan(model, options, X, T, W, validation_data, validation_split)


def validation_arrays(model, validation_data):
    """(Xv, Tv, Wv or None) of an (X_val, y_val) or (X_val, y_val, w_val) tuple."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise TypeError("validation_data must be an (X_val, y_val) or "
                        "(X_val, y_val, sample_weight_val) tuple")
    if len(validation_data) == 2 or validation_data[2] is None:
        return (*model.as_arrays(*validation_data[:2], what="validation X"), None)
    return model.as_arrays(*validation_data[:2], what="validation X",
                           sample_weight=validation_data[2])


def check_callbacks(callbacks):
    """fit's callbacks as a tuple of callables cb(model, history)."""
    if callbacks is None:
        return ()
    if callable(callbacks):
        callbacks = [callbacks]
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(model, history); got "
                            f"{type(cb).__name__} {cb!r}")
    return callbacks
