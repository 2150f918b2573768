"""Checks of fit's callbacks (class labels: labels.py; the validation split: split.py; sample
weights: core/sample_weight.py; schedules: core/schedules.py). Like validation.py, everything
here runs before any compiled code, with errors that say how to fix things."""
# model.py imports these from here; their homes are labels.py, numbers.py and split.py (the
# re-export spares an edit to model.py while other work on it is in flight)
from .labels import encode_labels  # noqa: F401
from .numbers import check_real  # noqa: F401
from .split import split_validation  # noqa: F401


def check_callbacks(callbacks):
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
