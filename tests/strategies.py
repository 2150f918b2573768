"""Hypothesis strategies for tests/test_properties.py: array arguments of every shape, dtype,
layout, container and value, each carrying the verdict an obvious reading of the API gives
(`problem`: None where the call must work, else why it must be refused).

An argument is drawn in four steps: float64 values (finite, or NaN, inf, huge, subnormal),
cast to a dtype, laid out in memory, then wrapped in a container. The verdict is computed
from what the array holds after the cast, independently of fastmlp's own checks.
"""
import functools
import itertools
import math
import os
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

SPECIAL = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e39, 1e30, -1e30, 65504.0, 1e5,
           0.0, -0.0, 5e-324, 1e-40]
# Plain float64/float32 come up most, so that most examples reach the compiled code.
DTYPES = tuple(["<f8"] * 4 + ["<f4"] * 3 + ["<f2", ">f8", ">f4", "|i1", "<i8", "|u1", ">i4",
                                      "|b1", "<c16", "O", "<U8", "<M8[s]"])
LAYOUTS = ("C",) * 4 + ("F", "strided", "reversed", "readonly", "unaligned", "memmap")
CONTAINERS = ("ndarray",) * 4 + ("list", "frame", "masked", "sparse")
_names = itertools.count()
BOOLEANS = st.booleans()
ONE_IN_FIVE = st.sampled_from([False] * 4 + [True])
ROWS = st.integers(1, 6)


@dataclass
class Arg:
    value: object         # what the call is given
    array: np.ndarray     # the values it holds, as the API should read them
    problem: str = None   # why the API must refuse it; None: it must work

    def __repr__(self):
        kind = type(self.value).__name__
        return (f"Arg({kind} of {self.array.dtype}{list(self.array.shape)}, "
                f"problem={self.problem!r}, values={self.array.tolist()!r:.200})")


SEEDS = st.integers(0, 2**32 - 1)
SPECIAL_VALUES = st.sampled_from(SPECIAL)
SPECIAL_COUNT = st.sampled_from([0, 0, 0, 1, 1, 2, 3])


def values(draw, shape, low=-3.0, high=3.0):
    """float64 values of `shape`: finite in [low, high] (float32-exact), sometimes with a few
    special ones. The finite values come from a drawn seed: a few draws per array instead of
    one per element keeps an example at a few milliseconds."""
    size = math.prod(shape)
    rng = np.random.default_rng(draw(SEEDS))
    base = rng.uniform(low, high, size).astype(np.float32).astype(np.float64)
    if size:
        for _ in range(draw(SPECIAL_COUNT)):
            base[draw(_index(size))] = draw(SPECIAL_VALUES)
    return base.reshape(shape)


@functools.lru_cache(maxsize=None)
def _index(size):
    return st.integers(0, size - 1)


@functools.lru_cache(maxsize=None)
def choice(options):
    """st.sampled_from(options), built once per tuple of options."""
    return st.sampled_from(options)


def cast(base, dtype):
    """base (float64) as dtype, the way a user's data of that dtype would hold it."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return np.rint(np.clip(np.nan_to_num(base), info.min, info.max)).astype(dtype)
        if dtype.kind == "b":
            return base > 0
        if dtype.kind == "M":
            return np.clip(np.nan_to_num(base), -1e10, 1e10).astype(np.int64).view(dtype)
        if dtype.kind == "U":
            return base.astype(dtype)
        return base.astype(dtype)  # f, c, O (Python floats)


def lay_out(arr, layout, directory):
    """The same values in another memory layout."""
    numeric = arr.dtype.kind in "biufc"
    if layout == "F":
        return np.asfortranarray(arr)
    if layout == "strided" and arr.ndim:
        big = np.zeros(tuple(2 * s for s in arr.shape), arr.dtype)
        view = big[(slice(None, None, 2),) * arr.ndim]
        view[...] = arr
        return view
    if layout == "reversed" and arr.ndim:
        return arr[::-1].copy()[::-1]
    if layout == "readonly":
        out = arr.copy()
        out.setflags(write=False)
        return out
    if layout == "unaligned" and numeric and arr.dtype.itemsize > 1:
        buf = np.zeros(arr.nbytes + 1, np.uint8)
        out = buf[1:].view(arr.dtype).reshape(arr.shape)
        out[...] = arr
        return out
    if layout == "memmap" and numeric and arr.size:
        path = os.path.join(directory, f"a{next(_names)}.npy")
        mapped = np.lib.format.open_memmap(path, mode="w+", dtype=arr.dtype, shape=arr.shape)
        mapped[...] = arr
        mapped.flush()
        del mapped
        return np.load(path, mmap_mode="r")
    return arr


def contain(draw, arr):
    """(value, problem): arr as a list, DataFrame, masked array or sparse matrix."""
    container = draw(choice(CONTAINERS))
    if container == "list":
        return arr.tolist(), None
    if container == "frame" and arr.ndim in (1, 2):
        import pandas as pd
        native = arr.astype(arr.dtype.newbyteorder("="))  # pandas refuses big-endian data
        return (pd.DataFrame(native) if arr.ndim == 2 else pd.Series(native)), None
    if container == "masked":
        mask = np.array(np.random.default_rng(draw(SEEDS)).random(arr.shape) < 0.3)
        if draw(BOOLEANS):
            mask[...] = False
        return np.ma.masked_array(arr, mask=mask), "masked" if mask.any() else None
    if container == "sparse" and arr.ndim == 2 and arr.dtype.kind in "biuf" \
            and arr.dtype.itemsize > 2:
        import scipy.sparse
        native = arr.astype(arr.dtype.newbyteorder("="))  # scipy refuses big-endian data
        return scipy.sparse.csr_matrix(native), "sparse"
    return arr, None


def dtype_problem(arr):
    kind = arr.dtype.kind
    if kind == "O":
        return None if all(isinstance(v, (int, float)) for v in arr.ravel()) else "dtype"
    return None if kind in "biuf" else "dtype"


def dressed(draw, base, directory, dtypes=DTYPES):
    """(value, array, problem) for values `base` in a drawn dtype, layout and container."""
    arr = cast(base, draw(choice(tuple(dtypes))))
    arr = lay_out(arr, draw(choice(LAYOUTS)), directory)
    value, problem = contain(draw, arr)
    return value, arr, problem or dtype_problem(arr)


def as_model_dtype(arr, dtype):
    with np.errstate(all="ignore"):
        return np.asarray(arr.astype(np.float64)).astype(dtype)


def features(draw, n_inputs, dtype, directory, rows=None):
    """X: mostly (rows, n_inputs); sometimes empty, 1-D, 3-D or the wrong width."""
    if rows is None:
        rows = draw(ROWS)
    shape = draw(choice(tuple([(rows, n_inputs)] * 8 + [
        (0, n_inputs), (rows,), (rows, n_inputs + 1), (rows, n_inputs, 1), ()])))
    base = values(draw, shape)
    value, arr, problem = dressed(draw, base, directory)
    if problem is None:
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != n_inputs:
            problem = "shape"
        elif not np.isfinite(as_model_dtype(arr, dtype)).all():
            problem = "not finite"
    return Arg(value, arr, problem)


def targets(draw, model, rows, directory):
    """y for model (cross_entropy, binary_cross_entropy or mse) with `rows` samples; the
    reference targets (rows, n_outputs) float64 come with it where it is valid."""
    k, loss = model.spec.n_outputs, model.loss_name
    n = draw(choice(tuple([rows] * 10 + [rows + 1, max(rows - 1, 0)])))
    form = draw(choice(("labels", "column", "rows", "rows", "flat3")))
    shape = {"labels": (n,), "column": (n, 1), "rows": (n, k), "flat3": (n, k, 1)}[form]
    rng = np.random.default_rng(draw(SEEDS))
    if loss == "cross_entropy" and form in ("labels", "column"):
        low, high = (-1, k + 1) if draw(ONE_IN_FIVE) else (0, k)
        base = rng.integers(low, high, shape).astype(np.float64)
        if draw(ONE_IN_FIVE):
            base = base + values(draw, shape)
    elif loss == "cross_entropy":
        hot = np.eye(k)[rng.integers(0, k, n)]
        base = hot.reshape(shape) if draw(BOOLEANS) else values(draw, shape, 0.0, 1.0)
    elif loss == "binary_cross_entropy":
        base = values(draw, shape) if draw(ONE_IN_FIVE) else values(draw, shape, 0.0, 1.0)
    else:
        base = values(draw, shape)
    value, arr, problem = dressed(draw, base, directory)
    labels = _label_vector(value, arr, k) if model.is_classifier and (
        loss == "cross_entropy" or k == 1) else None
    if labels is not None:
        problem, reference = _label_verdict(labels, n, rows, k, loss)
    elif problem is None:
        problem, reference = _target_verdict(arr, n, rows, k, loss, model.dtype)
    else:
        reference = None
    return Arg(value, arr, problem), reference


def _label_vector(value, arr, k):
    """arr as a 1-D vector of class labels (integers, bools or text), as fit reads one, or
    None for targets of any other kind."""
    if isinstance(value, np.ma.MaskedArray) or hasattr(value, "tocsr"):
        return None
    labels = arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 and k > 1 else arr
    if labels.ndim != 1 or labels.size == 0:
        return None
    if labels.dtype.kind == "O" and all(isinstance(v, str) for v in labels):
        labels = labels.astype(str)
    return labels if labels.dtype.kind in "iubU" else None


def _label_verdict(labels, n, rows, k, loss):
    """Labels 0..width-1 index the outputs; any other labels must be exactly `width`
    distinct values (one per output unit; a single sigmoid has two classes), sorted."""
    if n != rows:
        return "length", None
    width = 2 if loss == "binary_cross_entropy" else k
    if labels.dtype.kind in "iub" and labels.min() >= 0 and labels.max() < width:
        index = labels.astype(np.int64)
    else:
        classes = np.unique(labels)
        if len(classes) != width:
            return "labels", None
        index = np.searchsorted(classes, labels)
    if loss == "cross_entropy":
        return None, np.eye(k)[index]
    return None, index.reshape(-1, 1).astype(np.float64)


def _target_verdict(arr, n, rows, k, loss, dtype):
    """(problem, reference targets) by the rules of the API's docstring."""
    if arr.ndim not in (1, 2):
        return "shape", None
    if n != rows:
        return "length", None
    v = arr.astype(np.float64)
    if not np.isfinite(v).all():
        return "not finite", None
    if loss == "cross_entropy" and arr.ndim == 2 and arr.shape[1] == 1 and k > 1:
        v = v[:, 0]
    if loss == "cross_entropy" and v.ndim == 1:
        if not (v == np.round(v)).all() or v.min() < 0 or v.max() >= k:
            return "labels", None
        return None, np.eye(k)[v.astype(np.int64)]
    if v.ndim == 1:
        if k != 1:
            return "shape", None
        v = v.reshape(-1, 1)
    if v.shape[1] != k:
        return "shape", None
    t = as_model_dtype(v, dtype)
    if not np.isfinite(t).all():
        return "not finite", None
    if loss != "mse" and (t.min() < 0 or t.max() > 1):
        return "range", None
    if loss == "cross_entropy" and not np.allclose(t.sum(axis=1, dtype=np.float64), 1.0,
                                                   atol=1e-3):
        return "rows", None
    return None, t.astype(np.float64)
