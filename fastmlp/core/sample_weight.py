"""Sample weights: class weights turned into per-row weights, the check fit applies to them,
and the per-batch weight sums the CUDA host needs.

With sample weights w the loss of a batch is the weighted mean sum_i w_i l_i / sum_i w_i
(scikit-learn's convention), so only ratios between weights matter within a batch. The
kernels keep weights in float64 whatever the model's dtype.
"""

import numpy as np

from ..config import jit
from ..inputs.numbers import check_real


def check_sample_weight(sample_weight, n, what="sample_weight"):
    """sample_weight as a float64 (n,) array; a clear ValueError or TypeError for the wrong
    type, shape or length, NaN, infinite or negative values, or weights that are all zero."""
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers; got dtype {w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"{what} must be one weight per row, shape ({n},); got shape "
                         f"{w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"{what} has {w.shape[0]} weights for {n} rows; give one per row")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    if (w < 0).any():
        raise ValueError(f"{what} contains negative values; weights must be >= 0")
    if not (w > 0).any():
        raise ValueError(f"{what} is all zero: at least one row must have weight > 0")
    return w


def class_weights_to_sample_weights(y, class_weight):
    """One float64 weight per row of y from the weight of its class.

    y: class labels, (n,) (any hashable type, as given to fit) or (n, 1).
    class_weight:
      None        every row weighs 1;
      "balanced"  n_samples / (n_classes * count of the row's class), scikit-learn's rule,
                  so that each class weighs the same in total;
      a dict      {label: weight}; classes not in it weigh 1; a label that is not in y, or a
                  negative or non-finite weight, is a ValueError.

    >>> class_weights_to_sample_weights([0, 0, 0, 1], "balanced")
    array([0.66666667, 0.66666667, 0.66666667, 2.        ])
    """
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels; got shape {labels.shape}")
    n = labels.shape[0]
    if n == 0:
        raise ValueError("y is empty")
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if class_weight is None:
        return np.ones(n)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict "
                             f"{{label: weight}}; got {class_weight!r}")
        per_class = n / (classes.shape[0] * counts.astype(np.float64))
        return per_class[index.ravel()]
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}; "
                        f"got {type(class_weight).__name__}")
    known = set(classes.tolist())
    per_class = np.ones(classes.shape[0])
    for label, weight in class_weight.items():
        key = label.item() if isinstance(label, np.generic) else label
        if key not in known:
            raise ValueError(f"class_weight has label {label!r}, which is not in y (labels: "
                             f"{sorted(known, key=repr)})")
        per_class[np.searchsorted(classes, key)] = check_real(
            weight, f"class_weight[{label!r}]", 0.0)
    return per_class[index.ravel()]


@jit
def batch_weight_sums(out, weights, perm, batch_size):
    """out[b] = the sum of the weights of batch b of an epoch over perm, in float64 and in
    the order the CPU kernel adds them, so the CUDA host gets the same sums."""
    n = perm.shape[0]
    for b in range(out.shape[0]):
        s = 0.0
        for i in range(b * batch_size, min((b + 1) * batch_size, n)):
            s += weights[perm[i]]
        out[b] = s


@jit
def total_weight(weights):
    """The sum of the weights in float64, in row order (as the CPU loop adds a batch's)."""
    total = 0.0
    for i in range(weights.shape[0]):
        total += weights[i]
    return total
