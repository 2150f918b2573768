"""Input checks that run before any compiled code, with errors that say how to fix things.

One is left to the kernels where it would cost a pass of its own: a forward of many rows
checks for NaN and infinity in the first layer's pre-activations (check_inputs(finite=False),
cpu/backend.forward_rows)."""

import numpy as np

from ..config import jit
from ..core import cores

#: Float arrays of at least this many values are checked for NaN and infinity by
#: _largest_magnitude (one pass, no temporary); smaller ones by np.isfinite, which needs no
#: compile. The scan halves the check's cost on large inputs (docs/tuning.md).
FINITE_SCAN_MIN_VALUES = 1 << 20
#: Per float width: (the unsigned integer of the same width, the mask that clears the sign
#: bit, the bits of +inf). A float is NaN or infinite iff its magnitude bits are >= +inf's.
_FLOAT_BITS = {4: (np.uint32, np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)),
               8: (np.uint64, np.uint64(0x7FFFFFFFFFFFFFFF), np.uint64(0x7FF0000000000000))}


def _as_real_array(a, what, labels=False):
    """a as a real (bool, integer or float) numpy array, or a TypeError/ValueError that says
    how to get one. labels: a is class labels (the hint for strings differs)."""
    if a is None:
        raise TypeError(f"{what} is None; pass a numeric array")
    if type(a).__module__.startswith("scipy.sparse"):
        # np.asarray would make a 0-d object array of it; .toarray() gives the dense matrix
        raise TypeError(f"{what} is a scipy sparse matrix ({type(a).__name__}, shape "
                        f"{getattr(a, 'shape', '?')}); fastmlp trains on dense arrays: pass "
                        f"{what}.toarray()")
    if np.ma.isMaskedArray(a):
        masked = int(np.count_nonzero(np.ma.getmaskarray(a)))
        if masked:  # np.asarray would train on the values under the mask
            raise ValueError(f"{what} is a masked array with {masked} masked value(s), and "
                             f"fastmlp would ignore the mask: fill them (e.g. "
                             f"{what}.filled(0)) or drop the rows that hold them from X and y")
        a = np.ma.getdata(a)
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{what} could not be read as a numeric array ({exc}); pass a "
                        f"rectangular numeric array") from None
    kind = arr.dtype.kind
    if kind == "O":
        return _object_to_float(arr, what, labels)
    if kind == "c":
        raise TypeError(f"{what} is complex ({arr.dtype}); fastmlp trains on real numbers: "
                        f"pass the real part (np.real) or split real and imaginary features")
    if kind in "US":
        raise TypeError(_strings_message(what, arr.dtype, labels))
    if kind in "mM":
        raise TypeError(f"{what} holds dates or durations ({arr.dtype}), which are not "
                        f"numeric; convert them to numbers first (e.g. seconds as floats)")
    if kind not in "biuf":
        raise TypeError(f"{what} has dtype {arr.dtype}, which is not numeric; pass a plain "
                        f"array of numbers (a structured array: "
                        f"numpy.lib.recfunctions.structured_to_unstructured)")
    return arr


def _strings_message(what, dtype, labels):
    if labels:
        return (f"{what} holds strings (dtype {dtype}), which are not numeric: class labels must be "
                f"integers 0..K-1; encode them, e.g. classes, {what} = np.unique({what}, "
                f"return_inverse=True)")
    return (f"{what} holds strings (dtype {dtype}), which are not numeric: features must be "
            f"numbers; convert numeric text with {what}.astype(float), or encode categories "
            f"as numbers (e.g. sklearn.preprocessing.OneHotEncoder)")


def _is_missing(value):
    return value is None or type(value).__name__ in ("NAType", "NaTType")


def _object_to_float(arr, what, labels):
    """An object array (mixed pandas columns, lists of Decimals...) as float64 when numpy can
    convert every element, else an error that names the first element it cannot. Text is
    refused here as in a string array, numeric or not: the same data must get the same
    answer whichever container holds it."""
    items = arr.ravel().tolist()
    if any(issubclass(t, (str, bytes)) for t in set(map(type, items))):
        text = next(v for v in items if isinstance(v, (str, bytes)))
        raise TypeError(_strings_message(what, f"object, e.g. {text!r:.40}", labels))
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        pass
    for value in items:
        try:
            float(value)
            continue
        except (TypeError, ValueError, OverflowError):
            pass
        if _is_missing(value):
            raise ValueError(f"{what} has missing values ({value!r}); remove or impute them "
                             f"before training")
        if isinstance(value, complex):
            raise TypeError(f"{what} holds complex numbers such as {value!r}; fastmlp trains "
                            f"on real numbers")
        break
    raise TypeError(f"{what} holds values that are not real numbers, such as {value!r:.60} "
                    f"({type(value).__name__}); pass a rectangular numeric array")


@jit
def _largest_magnitude(bits, mask):
    """The largest of bits & mask over a 1-D unsigned array: the floats' bits with the sign
    cleared. An integer max vectorises (a float reduction would not, and np.isfinite
    writes a boolean array as large as its input first)."""
    top = bits.dtype.type(0)
    for i in range(bits.shape[0]):
        v = bits[i] & mask
        top = v if v > top else top
    return top


def _all_finite(arr):
    """True when the float array arr holds no NaN or infinity."""
    if arr.size < FINITE_SCAN_MIN_VALUES or not arr.flags.c_contiguous \
            or arr.dtype.itemsize not in _FLOAT_BITS:
        return bool(np.isfinite(arr).all())
    unsigned, mask, infinity = _FLOAT_BITS[arr.dtype.itemsize]
    bits = arr.reshape(-1).view(dtype=unsigned, type=np.ndarray)
    bits.flags.writeable = False  # one compiled signature whether arr is writable or not
    # Memory-bound: on two cores in half the time (docs/tuning.md).
    parts = min(cores.most_threads(), bits.shape[0] // FINITE_SCAN_MIN_VALUES)
    return bool(max(cores.map_parts(_largest_magnitude, bits, parts, mask)) < infinity)


def check_finite(arr, what, fix="remove or impute them before training"):
    """ValueError naming how many NaN or infinite values a float array holds, if any."""
    if arr.dtype.kind == "f" and not _all_finite(arr):
        bad = np.count_nonzero(~np.isfinite(arr))
        raise ValueError(f"{what} contains {bad} NaN or infinite value(s) (after conversion "
                         f"to {arr.dtype}); {fix}")


def check_array(a, what, shape, dtype):
    """a as a C-contiguous array of `shape` and `dtype`, read as X is read (masked values,
    sparse matrices and text refused; object arrays of numbers converted) and finite: for
    set_weights' W and b."""
    arr = _as_real_array(a, what)
    if arr.shape != tuple(shape):
        raise ValueError(f"{what} has shape {arr.shape}; expected {tuple(shape)}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    check_finite(out, what, fix="weights must be finite")
    return out


def check_weights(weights, spec, dtype):
    """set_weights' [(W, b), ...] (W shaped (n_in, n_out)) as one flat parameter vector of
    `dtype`, each array read as X is (masks, text and sparse refused) and finite."""
    n = len(spec.layers)
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise TypeError("set_weights takes a list of (W, b) pairs, one per layer")
    if len(weights) != n:
        raise ValueError(f"set_weights got {len(weights)} (W, b) pairs but the model has "
                         f"{n} layers")
    flat = np.empty(spec.n_params, dtype)
    for l, (pair, layer) in enumerate(zip(weights, spec.layers)):
        if not hasattr(pair, "__len__") or len(pair) != 2:
            raise TypeError(f"layer {l}: expected a (W, b) pair; got {type(pair).__name__}")
        W = check_array(pair[0], f"layer {l} W", (layer.n_in, layer.n_out), dtype)
        b = check_array(pair[1], f"layer {l} b", (layer.n_out,), dtype)
        flat[spec.weight_slice(l)] = W.ravel()
        flat[spec.bias_slice(l)] = b
    return flat


def for_kernels(arr):
    """A read-only view of arr, never a copy: the compiled kernels only read inputs, and numba
    types a read-only array apart from a writable one, so handing them one kind whatever the
    caller passed (a frozen array, a file mapped "r", a buffer from pickle) means one compile.
    The view is a base-class ndarray, so np.memmap and other subclasses type the same too."""
    view = arr.view(np.ndarray)
    view.flags.writeable = False
    return view


def check_inputs(X, n_inputs, dtype, what="X", finite=True):
    """X as a C-contiguous (n, n_inputs) array of the model's dtype. finite=False leaves
    out the check for NaN and infinity (check_finite), for a caller that makes it itself."""
    arr = _as_real_array(X, what)
    if arr.ndim != 2:
        hint = " use X.reshape(-1, 1) for a single feature" if arr.ndim == 1 else ""
        raise ValueError(f"{what} must be 2-D (samples, features); got {arr.ndim}-D with "
                         f"shape {arr.shape};{hint or ' one row per sample'}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty (0 samples); pass at least one row")
    if arr.shape[1] != n_inputs:
        raise ValueError(f"{what} has {arr.shape[1]} features but the model takes "
                         f"n_inputs={n_inputs}; pass (samples, {n_inputs}) data or build the "
                         f"model with n_inputs={arr.shape[1]}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if finite:
        check_finite(out, what)
    return for_kernels(out)


def check_targets(y, n_samples, loss, n_outputs, dtype, what="y"):
    """Targets as a C-contiguous (n, n_outputs) array of the model's dtype.

    cross_entropy: integer labels (n,) in [0, n_outputs) or one-hot/probability rows (n, K).
    binary_cross_entropy: (n,) for one output or (n, K), values in [0, 1].
    mse: (n,) for one output or (n, K).
    """
    classifier = loss in ("cross_entropy", "binary_cross_entropy")
    arr = _as_real_array(y, what, labels=classifier)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{what} must be 1-D (samples,) or 2-D (samples, outputs); got shape "
                         f"{arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{what} has {arr.shape[0]} samples but X has {n_samples}; X and "
                         f"{what} must have one row per sample")
    if arr.dtype.kind == "f":
        check_finite(arr, what)
    if loss == "cross_entropy" and arr.ndim == 2 and arr.shape[1] == 1 and n_outputs > 1:
        arr = arr[:, 0]  # a (samples, 1) column of labels, as a DataFrame column gives
    if loss == "cross_entropy" and arr.ndim == 1:
        labels = arr
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise ValueError(f"{what}: cross_entropy takes integer class labels (samples,) or "
                             f"(samples, 1), or one-hot rows (samples, {n_outputs}); got "
                             f"non-integer labels")
        if labels.min() < 0 or labels.max() >= n_outputs:
            raise ValueError(f"{what}: class labels must be in [0, {n_outputs - 1}] for a "
                             f"{n_outputs}-way softmax; got labels from {labels.min()} to "
                             f"{labels.max()}")
        out = np.zeros((n_samples, n_outputs), dtype=dtype)
        out[np.arange(n_samples), labels.astype(np.int64)] = 1
        return for_kernels(out)
    if arr.ndim == 1:
        if n_outputs != 1:
            raise ValueError(f"{what} is 1-D but the model has {n_outputs} outputs; pass "
                             f"(samples, {n_outputs}) targets")
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_outputs:
        raise ValueError(f"{what} has {arr.shape[1]} column{'s' * (arr.shape[1] != 1)} but "
                         f"the model has {n_outputs} output{'s' * (n_outputs != 1)}; pass "
                         f"(samples, {n_outputs}) targets")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    check_finite(out, what)
    if loss in ("binary_cross_entropy", "cross_entropy"):
        if out.min() < 0 or out.max() > 1:
            raise ValueError(f"{what}: {loss} targets must lie in [0, 1]; got values from "
                             f"{out.min()} to {out.max()}")
    if loss == "cross_entropy":
        sums = out.sum(axis=1, dtype=np.float64)
        if not np.allclose(sums, 1.0, atol=1e-3):
            raise ValueError(f"{what}: cross_entropy targets given as rows must be one-hot "
                             f"(or probabilities) summing to 1; pass integer labels instead")
    return for_kernels(out)


DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype):
    if isinstance(dtype, str):
        key = dtype
    else:
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = repr(dtype)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose 'float32' or 'float64'")
    return np.dtype(DTYPES[key])
