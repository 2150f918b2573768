"""The scores fastmlp reports beside the loss: accuracy (MLP.evaluate, the validation
curve, the CLI) and R² (the CLI's regression report). The scikit-learn estimators' `score`
methods use scikit-learn's own accuracy_score / r2_score, as the drop-in must."""
import numpy as np


def accuracy(outputs, T, output_activation, weights=None):
    """The (weighted) share of rows classified right: the largest output against the
    one-hot target for softmax, every output thresholded at 0.5 otherwise."""
    if output_activation == "softmax":
        correct = np.argmax(outputs, axis=1) == np.argmax(T, axis=1)
    else:
        correct = np.all((outputs >= 0.5) == (T >= 0.5), axis=1)
    return float(np.average(correct, weights=weights))


def r2(T, predictions):
    """1 - SS_res / SS_tot pooled over every output (scikit-learn's r2_score averages the
    outputs' scores instead; the two agree for one output); None when the targets are
    constant."""
    y = np.asarray(T, dtype=np.float64).reshape(len(T), -1)
    pred = np.asarray(predictions, dtype=np.float64).reshape(len(T), -1)
    total = ((y - y.mean(axis=0)) ** 2).sum()
    return float(1 - ((y - pred) ** 2).sum() / total) if total > 0 else None
