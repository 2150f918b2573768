"""Class labels and the facts the CLI keeps beside a saved model.

The CLI encodes a classifier's labels (any type: strings, non-contiguous integers) as codes
0..k-1 for MLP.fit, as scikit-learn's LabelEncoder does (sorted, via np.unique), and writes the
labels with a summary of the run to ``<model>.json`` beside the model file, so `predict` and
`evaluate` speak the user's labels. A model without that file (saved from Python) is read as
labels 0..k-1 (softmax) or 0/1 (one sigmoid output).
"""
import json
import os
import tempfile

import numpy as np


def is_classification(y, task):
    """task 'classify'/'regress' decides; 'auto' classifies anything but floats."""
    if task != "auto":
        return task == "classify"
    return np.asarray(y).dtype.kind != "f"


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


def targets(codes, model):
    """What fit/evaluate take for these class codes: the codes themselves for
    cross_entropy or one output, one-hot rows otherwise (mse or bce on k > 1 outputs)."""
    n_outputs = model.layers[-1][0]
    if model.loss_name == "cross_entropy" or n_outputs == 1:
        return codes
    if codes.max(initial=0) >= n_outputs:
        raise ValueError(f"the data has {codes.max() + 1} classes but the output layer has "
                         f"{n_outputs} units")
    return np.eye(n_outputs, dtype=np.float64)[codes]


def decide(model, X):
    """Class codes from the outputs: the largest of k > 1 outputs, else output >= 0.5."""
    out = model.forward(X)
    if out.shape[1] == 1:
        return (out[:, 0] >= 0.5).astype(np.int64)
    return np.argmax(out, axis=1)


def probabilities(model, X):
    """(rows, classes) probabilities: softmax outputs, or [1 - p, p] for one sigmoid."""
    out = model.forward(X)
    if out.shape[1] == 1:
        return np.column_stack([1 - out[:, 0], out[:, 0]])
    return out


# -- the JSON beside the model ---------------------------------------------------------------

def sidecar_path(model_path):
    return os.fspath(model_path) + ".json"


def write_sidecar(model_path, classes, summary):
    """Write <model>.json atomically: the class labels (None for regression) and a summary
    of the run. Returns its path."""
    path = sidecar_path(model_path)
    record = {"format": "fastmlp-cli", "version": 1,
              "classes": None if classes is None else [plain(c) for c in classes],
              "summary": summary}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_sidecar(model_path):
    """The record write_sidecar wrote for this model, or None if there is none."""
    path = sidecar_path(model_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path!r} (the labels beside the model) is unreadable: {exc}") \
            from None
    if not isinstance(record, dict) or record.get("format") != "fastmlp-cli":
        raise ValueError(f"{path!r} is not the labels file fastmlp train writes")
    return record


def model_classes(model, record):
    """The classes a model predicts: from the record, else 0..k-1 for a classifier's
    outputs, else None (a regressor)."""
    if record is not None and record.get("classes") is not None:
        return np.asarray(record["classes"])
    if not model.is_classifier:
        return None
    n_outputs = model.layers[-1][0]
    return np.arange(2 if n_outputs == 1 else n_outputs)
