"""The one home of class labels: labels of any type (strings, non-contiguous integers) to
codes 0..k-1 and back, sorted as np.unique sorts them (scikit-learn's LabelEncoder order).

MLP.fit reads a classifier's labels with encode_labels; the CLI encodes a table's label column
with encode and a test file's with codes_for (cli/labels.py says why it trains on float
targets built from the codes).
"""
import numpy as np


def encode(y):
    """(classes, codes): the sorted distinct labels and each row's index into them."""
    y = np.asarray(y)
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError:  # mixed types in an object column (e.g. 3 and "3"): compare as text
        classes, codes = np.unique(y.astype(str), return_inverse=True)
    return classes, codes.astype(np.int64).reshape(-1)


def codes_for(classes, y, where):
    """Each label's index into classes; ValueError naming labels not seen in training."""
    y = np.asarray(y)
    lookup = {plain(c): i for i, c in enumerate(classes)}
    codes = np.empty(len(y), np.int64)
    unseen = set()
    for i, label in enumerate(y):
        code = lookup.get(plain(label))
        if code is None:  # encode() compares mixed-type labels as text
            code = lookup.get(str(plain(label)))
        if code is None:
            unseen.add(plain(label))
            continue
        codes[i] = code
    if unseen:
        shown = ", ".join(map(repr, sorted(unseen, key=str)[:10]))
        raise ValueError(f"{where} has label(s) {shown} that the model was not trained on; "
                         f"its classes are {', '.join(map(repr, map(plain, classes[:20])))}")
    return codes


def plain(value):
    """numpy scalars -> Python values (JSON and dict lookups treat 1 and np.int64(1) alike)."""
    return value.item() if isinstance(value, np.generic) else value


def _label_vector(y, n_outputs, what="y"):
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
    if kind == "S" or (kind == "O" and any(isinstance(v, bytes) for v in labels)):
        # refused before training: a model file keeps labels as JSON, which has no bytes
        raise TypeError(f"{what} holds bytes labels such as {labels[0]!r}; decode them to "
                        f"str first (e.g. {what}.astype(str), or [v.decode() for v in {what}])")
    if kind == "O":
        if not all(isinstance(v, str) for v in labels):
            if any(isinstance(v, str) for v in labels):
                number = next(v for v in labels if not isinstance(v, str))
                text = next(v for v in labels if isinstance(v, str))
                raise TypeError(f"{what} mixes text and non-text labels (e.g. {text!r} and "
                                f"{number!r}); give labels of one type, e.g. "
                                f"{what}.astype(str) to make every label text")
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
    labels = _label_vector(y, n_outputs, what)
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


