"""fastmlp.sklearn trains as scikit-learn's MLPs do: with the rows in a fixed order
(shuffle=False) and the same random_state, both start from the same weights and follow the
same trajectory, so weights, loss curves, stopping epochs and learning rates agree."""
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.datasets import make_classification, make_multilabel_classification, \
    make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

from fastmlp.sklearn import MLPClassifier, MLPRegressor


def dataset(kind, n=100):
    if kind == "multiclass":
        return make_classification(n_samples=n, n_features=6, n_informative=4, n_classes=3,
                                   random_state=0)
    if kind == "binary":
        return make_classification(n_samples=n, n_features=6, random_state=1)
    if kind == "multilabel":
        return make_multilabel_classification(n_samples=n, n_features=6, n_classes=3,
                                              random_state=0)
    X, y = make_regression(n_samples=n, n_features=6, n_targets=2 if kind == "multioutput"
                           else 1, noise=0.1, random_state=0)
    return X, y / 100.0


def pair(kind, **params):
    """(fastmlp's estimator, scikit-learn's) with the same parameters."""
    ours, theirs = (MLPRegressor, sk.MLPRegressor) if kind in ("regression", "multioutput") \
        else (MLPClassifier, sk.MLPClassifier)
    return ours(**params), theirs(**params)


def fit_both(kind, X=None, y=None, sample_weight=None, **params):
    if X is None:
        X, y = dataset(kind)
    ours, theirs = pair(kind, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=sample_weight)
        theirs.fit(X, y, sample_weight=sample_weight)
    return ours, theirs


def assert_same_weights(ours, theirs, atol):
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


# Over 128 weights, so fastmlp trains with its generic kernel (one compile for all of these)
# rather than a kernel generated for each small architecture.
DETERMINISTIC = dict(hidden_layer_sizes=(12, 8), shuffle=False, batch_size=32, alpha=1e-3,
                     random_state=0, max_iter=6, tol=0.0)
SOLVERS = [dict(solver="sgd", learning_rate_init=0.05),
           dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False),
           dict(solver="sgd", learning_rate_init=0.05, momentum=0.0),
           # scikit-learn adds epsilon to sqrt(v) before Adam's bias correction, fastmlp (as
           # torch) after it, which changes the steps of weights with small gradients by up to
           # ~25% in the first epochs; epsilon=1e-30 leaves the rules otherwise identical
           dict(solver="adam", learning_rate_init=0.01, epsilon=1e-30)]
KINDS = ["multiclass", "binary", "multilabel", "regression", "multioutput"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: "-".join(map(str, s.values())))
def test_minibatch_trajectory_matches_scikit_learn(kind, solver):
    ours, theirs = fit_both(kind, activation="tanh", **DETERMINISTIC, **solver)
    assert_same_weights(ours, theirs, 1e-8)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    assert (ours.n_layers_, ours.n_outputs_) == (theirs.n_layers_, theirs.n_outputs_)
    # multi-output squared error: the l2 share of loss_ is taken from the epoch's last
    # weights (scikit-learn adds each batch's), hence the looser match there
    rtol = 1e-3 if kind == "multioutput" else 1e-7
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=rtol)


@pytest.mark.parametrize("activation", ["identity", "logistic", "relu"])
def test_each_activation_matches_scikit_learn(activation):
    ours, theirs = fit_both("multiclass", activation=activation, solver="sgd",
                            learning_rate_init=0.05, **DETERMINISTIC)
    assert_same_weights(ours, theirs, 1e-8)


def test_stopping_rule_matches_scikit_learn():
    params = dict(DETERMINISTIC, max_iter=300, tol=1e-3, n_iter_no_change=3, solver="sgd",
                  learning_rate_init=0.05)
    ours, theirs = pair("multiclass", **params)
    X, y = dataset("multiclass")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # both stop on the rule
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 300
    assert len(ours.loss_curve_) == ours.n_iter_
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-7)
    assert_same_weights(ours, theirs, 1e-8)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_learning_rate_schedules_match_scikit_learn(schedule):
    # momentum=0: fastmlp's velocity (as torch's) leaves the rate out and scikit-learn's
    # folds it in, the same rule while the rate is constant but not across a change
    params = dict(DETERMINISTIC, max_iter=40, solver="sgd", momentum=0.0,
                  learning_rate=schedule, learning_rate_init=0.2, power_t=0.25,
                  tol=0.05, n_iter_no_change=2)
    ours, theirs = fit_both("multiclass", **params)
    assert ours.n_iter_ == theirs.n_iter_
    # the rate of the next update: the schedule's, over the optimizer's base lr
    rate = ours._lr_schedule.lr(ours.model_.optimizer.lr)
    assert rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    assert rate < 0.2
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-7)
    assert_same_weights(ours, theirs, 1e-8)


def test_early_stopping_matches_scikit_learn():
    params = dict(DETERMINISTIC, max_iter=200, early_stopping=True, n_iter_no_change=4,
                  validation_fraction=0.2, solver="sgd", learning_rate_init=0.05)
    ours, theirs = fit_both("binary", **params)
    assert ours.n_iter_ == theirs.n_iter_ < 200
    # same stratified split and trajectory: the same scores, and the best weights are kept
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert ours.best_loss_ is None
    assert_same_weights(ours, theirs, 1e-8)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_sample_weights_match_scikit_learn(kind):
    X, y = dataset(kind)
    w = np.random.default_rng(0).uniform(0.1, 3.0, len(X))
    ours, theirs = fit_both(kind, X, y, sample_weight=w, solver="sgd",
                            learning_rate_init=0.05, **DETERMINISTIC)
    assert_same_weights(ours, theirs, 1e-8)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-7)


def test_integer_weights_equal_repeated_rows_in_full_batch():
    X, y = dataset("multiclass", n=60)
    counts = np.random.default_rng(1).integers(1, 4, len(X))
    params = dict(DETERMINISTIC, solver="sgd", learning_rate_init=0.1)
    weighted = MLPClassifier(**dict(params, batch_size=len(X))).fit(X, y,
                                                                    sample_weight=counts)
    repeated = MLPClassifier(**dict(params, batch_size=int(counts.sum()))).fit(
        np.repeat(X, counts, axis=0), np.repeat(y, counts))
    assert_same_weights(weighted, repeated, 1e-8)


@pytest.mark.parametrize("estimator", [MLPClassifier(solver="lbfgs"),
                                       MLPRegressor(solver="sgd", tol=1e-2, random_state=42)],
                         ids=["classifier-lbfgs", "regressor-full-batch-sgd"])
def test_sample_weight_equivalence_where_scikit_learn_passes_it(estimator):
    # the settings scikit-learn's own suite runs this check with on its MLPs
    check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, estimator)


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_lbfgs_reaches_scikit_learns_loss(kind):
    params = dict(solver="lbfgs", hidden_layer_sizes=(10,), random_state=0, max_iter=150,
                  alpha=1e-3)
    ours, theirs = fit_both(kind, **params)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.01)
    assert 1 <= ours.n_iter_ <= 150
    assert not hasattr(ours, "loss_curve_")  # as scikit-learn: minibatch solvers only


def test_lbfgs_warns_when_it_runs_out_of_iterations():
    X, y = dataset("multiclass")
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier(solver="lbfgs", max_iter=2, random_state=0).fit(X, y)


def test_partial_fit_continues_like_one_longer_fit():
    X, y = dataset("multiclass")
    params = dict(DETERMINISTIC, solver="adam", learning_rate_init=0.01, epsilon=1e-30)
    longer = MLPClassifier(**dict(params, max_iter=3)).fit(X, y)
    steps = MLPClassifier(**params)
    for _ in range(3):
        steps.partial_fit(X, y, classes=np.unique(y))
    # the Adam moments and step count carry over between calls
    assert_same_weights(steps, longer, 1e-12)
    assert steps.t_ == longer.t_ == 3 * len(X)
    assert steps.n_iter_ == 1  # as scikit-learn: n_iter_ counts the last call's epochs
    np.testing.assert_allclose(steps.loss_curve_, longer.loss_curve_, rtol=1e-12)


def test_partial_fit_matches_scikit_learn():
    X, y = dataset("multiclass")
    ours, theirs = pair("multiclass", **dict(DETERMINISTIC, solver="sgd",
                                             learning_rate_init=0.05))
    for _ in range(3):
        ours.partial_fit(X, y, classes=[0, 1, 2])
        theirs.partial_fit(X, y, classes=[0, 1, 2])
    assert_same_weights(ours, theirs, 1e-8)


def test_warm_start_continues_from_the_weights_with_a_new_optimizer():
    X, y = dataset("multiclass")
    params = dict(DETERMINISTIC, solver="adam", learning_rate_init=0.01, epsilon=1e-30,
                  warm_start=True)
    ours, theirs = pair("multiclass", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            ours.fit(X, y)
            theirs.fit(X, y)
    assert_same_weights(ours, theirs, 1e-8)
    assert ours.t_ == theirs.t_ == 2 * 6 * len(X)
    assert len(ours.loss_curve_) == 12


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_schedules_across_warm_starts_and_partial_fits_match_scikit_learn(schedule):
    """A warm start is a new optimizer (the rate starts over) on the same record (t_, the
    no-improvement count); partial_fit continues both."""
    X, y = dataset("multiclass")
    params = dict(DETERMINISTIC, max_iter=5, solver="sgd", momentum=0.0, warm_start=True,
                  learning_rate=schedule, learning_rate_init=0.2, power_t=0.25, tol=0.05,
                  n_iter_no_change=1)
    ours, theirs = pair("multiclass", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours.fit(X, y)
            theirs.fit(X, y)
        for _ in range(2):
            ours.partial_fit(X, y)
            theirs.partial_fit(X, y)
    assert ours._lr_schedule.lr(0.2) == pytest.approx(theirs._optimizer.learning_rate,
                                                      rel=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-7)
    assert_same_weights(ours, theirs, 1e-8)
