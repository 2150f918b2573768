"""The one home of fastmlp's row splits: MLP.fit's validation_split (split_validation), the
CLI's test and validation hold-outs, and the scikit-learn estimators' early-stopping split.

All of them draw scikit-learn's train_test_split rows, step for step (ShuffleSplit,
StratifiedShuffleSplit), rewritten in numpy: importing scikit-learn takes 1-2 s (scipy.stats
comes with it), most of a `fastmlp train` on the digits once its kernels are cached
(tests/test_cli_split.py compares the two on many cases), so a seed splits the rows as it
always did. Where scikit-learn would refuse, split_rows asks scikit-learn itself, for its
error message.
"""
import math

import numpy as np

from .numbers import check_real
from .validation import for_kernels


def train_test_split(n, test_size, seed, stratify=None):
    """(train rows, test rows) of np.arange(n), as sklearn.model_selection.train_test_split(
    np.arange(n), test_size=test_size, random_state=seed, stratify=stratify) returns them,
    for a float test_size in (0, 1); None where it would raise (or for another test_size).
    seed: an int or a np.random.RandomState, whose draws advance as scikit-learn's would."""
    if not isinstance(test_size, float) or not 0 < test_size < 1:
        return None
    return _draw(n, math.ceil(test_size * n), seed, stratify)


def split_rows(n, test_size, seed, stratify=None):
    """(train rows, test rows) exactly as scikit-learn's train_test_split draws them for a
    float fraction or an int count of test rows; scikit-learn's own ValueError where it
    refuses."""
    if isinstance(test_size, float):
        rows = train_test_split(n, test_size, seed, stratify)
    elif 0 < test_size < n:
        rows = _draw(n, int(test_size), seed, stratify)
    else:
        rows = None
    if rows is not None:
        return rows
    from sklearn.model_selection import train_test_split as sklearn_split
    return tuple(sklearn_split(np.arange(n), test_size=test_size, random_state=seed,
                               stratify=stratify))


def _draw(n, n_test, seed, stratify):
    n_train = n - n_test
    if n_train <= 0:
        return None
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n)
        return permutation[n_test:n_test + n_train], permutation[:n_test]
    stratify = np.asarray(stratify)
    if stratify.ndim == 2:  # rows of a label matrix: one class per distinct row, by text
        stratify = np.array([" ".join(row.astype("str")) for row in stratify])
    if stratify.ndim != 1 or len(stratify) != n:
        return None
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True,
                                                 return_counts=True)
    n_classes = classes.shape[0]
    if class_counts.min() < 2 or n_train < n_classes or n_test < n_classes:
        return None
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(n_classes):
        permutation = rng.permutation(class_counts[i])
        rows = class_indices[i].take(permutation, mode="clip")
        train.extend(rows[:n_i[i]])
        test.extend(rows[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def split_validation(X, T, W, fraction, seed, classifier):
    """MLP.fit's validation_split: hold out `fraction` of the rows, (X, T, W, (X_val, T_val[,
    W_val])), stratified by class for classifiers, shuffled by a generator seeded with the
    model's seed."""
    fraction = check_real(fraction, "validation_split", 0.0)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split must be in (0, 1); got {fraction}")
    n = X.shape[0]
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"validation_split={fraction} of {n} rows leaves "
                         f"{n_val} for validation and {n - n_val} for training; both need at "
                         f"least one row")
    stratify = np.argmax(T, axis=1) if classifier and T.shape[1] > 1 else \
        (T[:, 0] >= 0.5).astype(int) if classifier else None
    if stratify is not None and np.bincount(stratify).min(initial=n) < 2:
        stratify = None  # a class with one row cannot be split: plain random split
    if stratify is not None and len(np.unique(stratify)) > n_val:
        stratify = None
    train, val = split_rows(n, n_val, np.random.default_rng(seed).integers(2**31), stratify)
    train, val = np.sort(train), np.sort(val)
    # the kernels' kind of array (validation.for_kernels), as check_inputs hands out
    X_val, T_val, X, T = (for_kernels(a) for a in (X[val], T[val], X[train], T[train]))
    validation = (X_val, T_val) if W is None else (X_val, T_val, W[val])
    return X, T, None if W is None else W[train], validation


def _approximate_mode(class_counts, n_draws, rng):
    """Draws per class closest to proportional, ties broken at random (scikit-learn's)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
