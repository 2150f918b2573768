"""Checks and preparation of fit's newer arguments: class labels, the validation split and
callbacks (sample weights: weights.py; schedules: schedules.py). Like validation.py, everything here runs before
any compiled code, with errors that say how to fix things."""
import math
import numbers

import numpy as np

from .validation import for_kernels


def check_real(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name} must be a finite number >= {minimum}; got {value!r}")
    return float(value)


def _label_vector(y, n_outputs):
    """y as a 1-D array of class labels (ints, bools or strings), or None when it is
    anything else: floats, complex, masked, sparse, 2-D targets... which check_targets
    accepts or explains."""
    if y is None or isinstance(y, (str, bytes, np.ma.MaskedArray)) or hasattr(y, "tocsr"):
        return None
    try:
        labels = np.asarray(y)
    except Exception:
        return None
    if labels.ndim == 2 and labels.shape[1] == 1 and n_outputs > 1:
        labels = labels[:, 0]  # an (n, 1) column of labels
    if labels.ndim != 1 or labels.size == 0:
        return None
    kind = labels.dtype.kind
    if kind == "O":
        if not all(isinstance(v, str) for v in labels):
            return None  # numbers or missing values in an object array: check_targets
        labels = labels.astype(str)
    elif kind not in "iubUS":
        return None
    return labels


def _range_hint(width):
    return f"class labels must be in [0, {width - 1}]"


def encode_labels(y, classes, n_outputs, output, what="y"):
    """(classes, targets) for a classifier's labels y.

    Integer labels that already index the outputs (0..k-1; 0/1 for one sigmoid output)
    pass through, and classes is np.arange(k) on first sight. Other labels (strings,
    non-contiguous integers) are mapped through `classes` (np.unique(y) on first sight).
    Anything else (float or one-hot targets, multi-label 0/1 rows) passes through with
    classes None, for check_targets."""
    if output == "sigmoid" and n_outputs > 1:
        return None, y  # multi-label 0/1 rows
    labels = _label_vector(y, n_outputs)
    if labels is None:
        return None, y
    width = 2 if output == "sigmoid" and n_outputs == 1 else n_outputs
    numeric = labels.dtype.kind in "iub"
    index_like = numeric and labels.min() >= 0 and labels.max() < width
    if classes is None:
        if index_like:
            return np.arange(width), labels
        classes = np.unique(labels)
        if len(classes) != width:
            # Each output unit is one class: a label set of another size cannot be mapped
            # (labels missing from this y would leave units without a class).
            hint = f"{_range_hint(width)} or be" if numeric else "they must be"
            raise ValueError(f"{what}: {hint} exactly {width} distinct labels for this "
                             f"model's {n_outputs} {output} output(s), one per class; got "
                             f"{len(classes)} distinct label(s) "
                             f"{classes.tolist()[:10]} (give the output layer one unit per "
                             f"class)")
    elif index_like and classes.dtype.kind in "iub" \
            and np.array_equal(classes, np.arange(width)):
        return classes, labels
    if (classes.dtype.kind in "iub") != numeric:
        raise ValueError(f"{what} holds {labels.dtype} labels but the model was fitted on "
                         f"classes {classes.tolist()[:10]}")
    index = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
    unknown = classes[index] != labels
    if np.any(unknown):
        hint = f"{_range_hint(width)}: " if np.array_equal(classes, np.arange(width)) else ""
        raise ValueError(f"{what}: {hint}labels the model does not know: "
                         f"{np.unique(labels[unknown]).tolist()[:10]}; its classes are "
                         f"{classes.tolist()[:20]}")
    return classes, index


def split_validation(X, T, W, fraction, seed, classifier):
    """Hold out `fraction` of the rows: (X, T, W, (X_val, T_val[, W_val])), stratified by
    class for classifiers, shuffled by a generator seeded with the model's seed."""
    fraction = check_real(fraction, "validation_split", 0.0)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split must be in (0, 1); got {fraction}")
    n = X.shape[0]
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"validation_split={fraction} of {n} rows leaves "
                         f"{n_val} for validation and {n - n_val} for training; both need at "
                         f"least one row")
    from sklearn.model_selection import train_test_split
    stratify = np.argmax(T, axis=1) if classifier and T.shape[1] > 1 else \
        (T[:, 0] >= 0.5).astype(int) if classifier else None
    if stratify is not None and np.bincount(stratify).min(initial=n) < 2:
        stratify = None  # a class with one row cannot be split: plain random split
    if stratify is not None and len(np.unique(stratify)) > n_val:
        stratify = None
    rows = np.arange(n)
    train, val = train_test_split(rows, test_size=n_val, stratify=stratify,
                                  random_state=np.random.default_rng(seed).integers(2**31))
    train, val = np.sort(train), np.sort(val)
    # the kernels' kind of array (validation.for_kernels), as check_inputs hands out
    X_val, T_val, X, T = (for_kernels(a) for a in (X[val], T[val], X[train], T[train]))
    validation = (X_val, T_val) if W is None else (X_val, T_val, W[val])
    return X, T, None if W is None else W[train], validation


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
