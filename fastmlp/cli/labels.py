"""Class labels on the command line, and the run summary the CLI keeps beside a model.

The CLI encodes a classifier's labels (any type: strings, non-contiguous integers) as codes
0..k-1, sorted as np.unique sorts them (scikit-learn's LabelEncoder, and MLP.fit's own
order), and trains on float targets built from the codes: one-hot rows for k > 1 outputs, a
0/1 column for one sigmoid output. Float targets are never read as labels by MLP.fit, so the
same targets serve every loss (cross-entropy, and mse or bce on one-hot rows, which MLP.fit
cannot build from labels). After training the CLI sets the model's classes_ to the labels,
which MLP.save keeps in the model file: `predict`, `evaluate` and Python's MLP.predict then
speak the user's labels.

``<model>.json`` beside the model holds a summary of the run for `fastmlp info`.
"""
import json
import os

import numpy as np

from ..files import atomic_write, digest



def is_classification(y, task):
    """task 'classify'/'regress' decides; 'auto' classifies anything but floats."""
    if task != "auto":
        return task == "classify"
    return np.asarray(y).dtype.kind != "f"


def targets(codes, model):
    """The float targets fit/loss take for these class codes: one-hot rows for k > 1
    outputs (set in place: many classes cost rows x k, never a k x k identity), a 0/1
    column for one output."""
    n_outputs = model.layers[-1][0]
    if n_outputs == 1:
        return codes.astype(np.float64)
    if codes.max(initial=0) >= n_outputs:
        raise ValueError(f"the data has {codes.max() + 1} classes but the output layer has "
                         f"{n_outputs} units")
    T = np.zeros((len(codes), n_outputs))
    T[np.arange(len(codes)), codes] = 1.0
    return T


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


def write_sidecar(model_path, summary):
    """Write <model>.json atomically: a summary of the run, with the digest of the model
    file it describes. Returns its path."""
    path = sidecar_path(model_path)
    record = {"format": "fastmlp-cli", "version": 1, "summary": summary,
              "model_sha256": digest(model_path)}
    atomic_write(path, lambda f: json.dump(record, f, indent=1), text=True)
    return path


def describes(record, model_path):
    """Whether a run record is of the model file now at model_path: False once the file
    was saved over (from Python, or by a run stopped between its two files). Records
    written before the digest was kept are taken at their word."""
    kept = record.get("model_sha256")
    return not isinstance(kept, str) or kept == digest(model_path)


def read_sidecar(model_path):
    """The record write_sidecar wrote for this model, or None if there is none."""
    path = sidecar_path(model_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path!r} (the run summary beside the model) is unreadable: "
                         f"{exc}") from None
    if not isinstance(record, dict) or record.get("format") != "fastmlp-cli":
        raise ValueError(f"{path!r} is not the run summary fastmlp train writes")
    return record


def model_classes(model):
    """The classes a model predicts: its classes_ (kept in the model file), else 0..k-1 for
    a classifier's outputs, else None (a regressor)."""
    if model.classes_ is not None:
        return np.asarray(model.classes_)
    if not model.is_classifier:
        return None
    n_outputs = model.layers[-1][0]
    return np.arange(2 if n_outputs == 1 else n_outputs)
