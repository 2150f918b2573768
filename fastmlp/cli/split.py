"""scikit-learn's train_test_split (ShuffleSplit, StratifiedShuffleSplit), rewritten in numpy.

Importing scikit-learn takes 1-2 s (scipy.stats comes with it), most of a `fastmlp train`
on the digits once its kernels are cached; the CLI's splits need only this. The draws are
scikit-learn's, step for step (tests/test_cli_split.py compares the two on many cases), so a
seed splits the rows as it always did. Anything scikit-learn would refuse returns None: the
caller then asks scikit-learn itself, for its error message.
"""
import math

import numpy as np


def train_test_split(n, test_size, seed, stratify=None):
    """(train rows, test rows) of np.arange(n), as sklearn.model_selection.train_test_split(
    np.arange(n), test_size=test_size, random_state=seed, stratify=stratify) returns them,
    for a float test_size in (0, 1) and an int seed; None where it would raise."""
    if not isinstance(test_size, float) or not 0 < test_size < 1:
        return None
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0:
        return None
    rng = np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n)
        return permutation[n_test:n_test + n_train], permutation[:n_test]
    stratify = np.asarray(stratify)
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
