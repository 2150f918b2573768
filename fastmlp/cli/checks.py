"""What `fastmlp train` checks in its data before it trains: features finite, a --test file
shaped like --data, and a task (classification or regression) it can say why it chose."""
import numpy as np

from .common import UsageError

#: --task auto takes integer targets with more distinct values than this for quantities
#: (prices, counts), not classes, and asks for --task: a class per value would be an
#: output unit per value, each learnt from a few rows.
AUTO_MAX_CLASSES = 256
#: ... and so with more than this many values when most of them label a single row.
AUTO_SPARSE_CLASSES = 20


def check_features(X, where, width=None):
    """UsageError if X does not have `width` columns, or holds NaN or an infinity (named by
    row and column, so the user can find it)."""
    if width is not None and X.shape[1] != width:
        raise UsageError(f"{where} has {X.shape[1]} feature columns but the training data "
                         f"has {width}; give it the same columns (nothing was trained)")
    if X.dtype.kind != "f":
        return
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise UsageError(f"{where}: {int(bad.sum())} feature value(s) are NaN or infinite, "
                         f"the first at row {row} column {column} (0-based, data rows and "
                         f"feature columns: the target left out); drop or fill them "
                         f"(nothing was trained)")


def choose_task(y, task):
    """(classify: bool, why: str or None): 'classify'/'regress' decide; 'auto' classifies
    integer, bool and text targets and regresses floats, and says why. Integer targets with
    very many distinct values are refused under 'auto' (a UsageError asking for --task)."""
    y = np.asarray(y)
    if task != "auto":
        return task == "classify", None
    if y.dtype.kind == "f":
        why = "the target holds floats"
        if np.isfinite(y).all() and np.array_equal(y, np.round(y)):
            k = len(np.unique(y))
            if k <= AUTO_MAX_CLASSES:
                why += (f", though all {k} distinct values are whole numbers: give --task "
                        f"classify if they are classes")
        return False, why
    if y.dtype.kind not in "biu":
        kind = "text" if y.dtype.kind in "OUS" else str(y.dtype)
        return True, f"the target holds {kind} labels"
    k = len(np.unique(y))
    if k > AUTO_MAX_CLASSES or (k > AUTO_SPARSE_CLASSES and k > len(y) // 2):
        raise UsageError(f"the target holds {k} distinct integer values in {len(y)} rows: "
                         f"too many to be classes by --task auto (one output unit per "
                         f"value); give --task regress if it is a quantity, or --task "
                         f"classify if they really are {k} classes")
    return True, f"the target holds {k} distinct integer values"


def nonfinite_outputs(model, X, where):
    """None, or a sentence saying for how many rows of X the model's outputs are NaN or
    infinite (argmax would call each of them the first class, silently)."""
    out = model.forward(X)
    bad = ~np.isfinite(out).all(axis=1)
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    return (f"the model's outputs are NaN or infinite for {int(bad.sum())} of {len(X)} rows "
            f"of {where} (the first: row {row}, largest input "
            f"{float(np.max(np.abs(X[row]))):.3g}): inputs far outside the training data's "
            f"range overflow; scale them as the training data was")
