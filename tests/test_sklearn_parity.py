"""Side by side with scikit-learn's MLPs on the same splits and hyper-parameters: the held-out
accuracy (R² for regression) is within 1 point, for each solver.

The minibatch solvers shuffle with different random streams in the two libraries, so their
scores are averaged over three random_states; L-BFGS is deterministic (full batch) and runs
once."""
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.datasets import load_digits, load_iris, make_moons, \
    make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fastmlp.sklearn import MLPClassifier, MLPRegressor


def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def moons():
    return make_moons(n_samples=2000, noise=0.25, random_state=0)


def regression():
    X, y = make_regression(n_samples=1000, n_features=10, noise=10.0, random_state=0)
    return X, y / y.std()


def multilabel():
    X, Y = make_multilabel_classification(n_samples=2000, n_features=20, n_classes=5,
                                          random_state=0)
    return StandardScaler().fit_transform(X), Y


DATASETS = {"digits": digits, "iris": iris, "moons": moons, "regression": regression,
            "multilabel": multilabel}
SOLVERS = {"adam": dict(solver="adam", max_iter=100),
           "sgd": dict(solver="sgd", learning_rate_init=0.01, max_iter=100),
           "lbfgs": dict(solver="lbfgs", max_iter=200)}


def mean_score(estimator_class, params, seeds, split):
    X_train, X_test, y_train, y_test = split
    scores = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = estimator_class(**params, random_state=seed).fit(X_train, y_train)
        scores.append(model.score(X_test, y_test))
    return float(np.mean(scores))


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("name", list(DATASETS))
def test_same_held_out_score_as_scikit_learn(name, solver):
    X, y = DATASETS[name]()
    split = train_test_split(X, y, test_size=0.3, random_state=0)
    ours, theirs = (MLPRegressor, sk.MLPRegressor) if name == "regression" else \
        (MLPClassifier, sk.MLPClassifier)
    params = dict(hidden_layer_sizes=(64,), **SOLVERS[solver])
    seeds = [0] if solver == "lbfgs" else [0, 1, 2]
    mine = mean_score(ours, params, seeds, split)
    reference = mean_score(theirs, params, seeds, split)
    assert abs(mine - reference) <= 0.01, (mine, reference)
    assert mine > 0.3  # both learned something (multi-label subset accuracy is the lowest)
