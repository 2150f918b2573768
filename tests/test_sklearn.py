"""fastmlp.sklearn's estimators as scikit-learn users meet them: parameters, labels, input
types, persistence, and use inside pipelines and grid searches."""
import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import make_classification, make_multilabel_classification, \
    make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import fastmlp
from fastmlp.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# 32 units: over 128 weights, so the generic kernel (compiled once) trains every case
FAST = dict(hidden_layer_sizes=(32,), max_iter=30, learning_rate_init=0.01, random_state=0)


def classification(n=90, classes=3, seed=0):
    return make_classification(n_samples=n, n_features=5, n_informative=4, n_redundant=0,
                               n_classes=classes, random_state=seed)


@pytest.mark.parametrize("ours, theirs", [(MLPClassifier, sk.MLPClassifier),
                                          (MLPRegressor, sk.MLPRegressor)])
def test_parameters_and_defaults_are_scikit_learns(ours, theirs):
    mine, reference = ours().get_params(), theirs().get_params()
    assert set(mine) - set(reference) == {"dtype", "device"}
    for name, value in reference.items():
        assert mine[name] == value, name
    assert (mine["dtype"], mine["device"]) == (None, "cpu")


@pytest.mark.parametrize("name, value", [
    ("activation", "softplus"), ("solver", "newton"), ("alpha", -1.0), ("batch_size", 0),
    ("learning_rate", "cyclic"), ("learning_rate_init", 0.0), ("max_iter", 0),
    ("momentum", 1.5), ("validation_fraction", 1.0), ("beta_1", 1.0), ("epsilon", 0.0),
    ("n_iter_no_change", 0), ("max_fun", 0), ("shuffle", "yes"), ("dtype", "float16"),
    ("device", "tpu"), ("hidden_layer_sizes", "wide")])
def test_bad_parameters_raise_invalid_parameter_error(name, value):
    X, y = classification()
    with pytest.raises(InvalidParameterError, match=name):
        MLPClassifier(**{name: value}).fit(X, y)


def test_regressor_loss_options():
    X, y = make_regression(n_samples=30, n_features=3, random_state=0)
    with pytest.raises(InvalidParameterError, match="loss"):
        MLPRegressor(loss="poisson").fit(X, y)


def test_a_zero_width_layer_is_a_value_error():
    X, y = classification()
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        MLPClassifier(hidden_layer_sizes=(10, 0)).fit(X, y)


def test_fitted_attributes_and_the_underlying_model():
    X, y = classification()
    clf = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=5, random_state=0).fit(X, y)
    assert isinstance(clf.model_, fastmlp.MLP)
    assert clf.model_.layers == [(16, "relu"), (8, "relu"), (3, "softmax")]
    assert [W.shape for W in clf.coefs_] == [(5, 16), (16, 8), (8, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (8,), (3,)]
    assert (clf.n_layers_, clf.n_outputs_, clf.n_features_in_) == (4, 3, 5)
    assert clf.out_activation_ == "softmax" and clf.n_iter_ == 5 == len(clf.loss_curve_)
    assert clf.t_ == 5 * len(X) and clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None


def test_coefs_can_be_assigned():
    X, y = classification()
    clf = MLPClassifier(**FAST).fit(X, y)
    clf.coefs_ = [np.zeros_like(W) for W in clf.coefs_]
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    np.testing.assert_allclose(clf.predict_proba(X), 1 / 3)


def test_the_logistic_activation_maps_to_sigmoid():
    X, y = classification()
    clf = MLPClassifier(activation="logistic", **FAST).fit(X, y)
    assert clf.model_.layers[0] == (32, "sigmoid")


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([-4, 10, 7])])
def test_any_label_type_comes_back_from_predict(labels):
    X, y = classification()
    y = labels[y]
    clf = MLPClassifier(**FAST).fit(X, y)
    assert set(clf.predict(X)) <= set(labels)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    assert clf.score(X, y) > 0.6


def test_binary_has_one_logistic_output_and_two_probability_columns():
    X, y = classification(classes=2)
    y = np.where(y == 1, "yes", "no")
    clf = MLPClassifier(**FAST).fit(X, y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])


def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(n_samples=80, n_features=5, n_classes=4,
                                          random_state=0)
    clf = MLPClassifier(**FAST).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 4
    assert clf.predict(X).shape == (80, 4) and clf.predict_proba(X).shape == (80, 4)
    assert set(np.unique(clf.predict(X))) <= {0, 1}


def test_multi_output_regression():
    X, Y = make_regression(n_samples=80, n_features=5, n_targets=3, random_state=0)
    reg = MLPRegressor(**FAST).fit(X, Y / 100)
    assert reg.predict(X).shape == (80, 3) and reg.n_outputs_ == 3
    assert reg.out_activation_ == "identity"


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_trains_as_dense(fmt):
    X, y = classification()
    X[X < 0] = 0
    dense = MLPClassifier(**FAST).fit(X, y)
    sparse = MLPClassifier(**FAST).fit(sp.csr_matrix(X).asformat(fmt), y)
    for a, b in zip(dense.coefs_, sparse.coefs_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sparse.predict_proba(sp.csr_matrix(X).asformat(fmt)),
                                  dense.predict_proba(X))


def test_pandas_input_records_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = classification()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    clf = MLPClassifier(**FAST).fit(frame, pd.Series(y))
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(frame), from_array)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"f0": "other"}))


@pytest.mark.parametrize("dtype, param, expected", [
    (np.float32, None, np.float32), (np.float64, None, np.float64),
    (np.int64, None, np.float64), (np.float64, "float32", np.float32)])
def test_precision_follows_the_input_unless_dtype_is_set(dtype, param, expected):
    X, y = classification()
    clf = MLPClassifier(dtype=param, **FAST).fit(X.astype(dtype), y)
    assert all(W.dtype == expected for W in clf.coefs_ + clf.intercepts_)
    assert clf.model_.dtype == expected


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_a_pickled_estimator_predicts_and_continues_identically(dump, tmp_path):
    X, y = classification()
    clf = MLPClassifier(**FAST).fit(X, y)
    if dump == "pickle":
        copy = pickle.loads(pickle.dumps(clf))
    else:
        joblib.dump(clf, tmp_path / "clf.joblib")
        copy = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(copy.predict(X), clf.predict(X))
    # the optimizer state and shuffle sequence travel too: partial_fit continues the same
    copy.partial_fit(X, y)
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_clone_get_params_and_set_params():
    clf = MLPClassifier(hidden_layer_sizes=(5, 3), alpha=0.1, dtype="float32")
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy is not clf
    copy.set_params(alpha=0.5, hidden_layer_sizes=(7,))
    assert copy.alpha == 0.5 and clf.alpha == 0.1


def test_max_iter_warns_and_verbose_prints(capsys):
    X, y = classification()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["Iteration 1", "Iteration 2",
                                                      "Iteration 3"]
    assert all(line.split(", loss = ")[1] for line in lines)


def test_partial_fit_needs_classes_first_and_refuses_new_ones():
    X, y = classification()
    clf = MLPClassifier(**FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # not every class in a batch
    assert clf.n_outputs_ == 3 and clf.n_iter_ == 1
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, y + 1)


def test_partial_fit_is_only_for_the_minibatch_solvers():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    X, y = classification()
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_keeps_the_classes():
    X, y = classification()
    clf = MLPClassifier(warm_start=True, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X[y < 2], y[y < 2])


def test_early_stopping_keeps_the_best_weights():
    X, y = classification(n=200)
    clf = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, max_iter=300,
                        n_iter_no_change=5, random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ < 300
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPClassifier(early_stopping=True).fit(X[:10], y[:10])


def test_batch_size_larger_than_the_data_is_clipped_with_a_warning():
    X, y = classification()
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        MLPClassifier(batch_size=1000, **FAST).fit(X, y)


def test_diverging_training_is_a_value_error():
    X, y = make_regression(n_samples=50, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=10.0, momentum=0.0, max_iter=50,
                     random_state=0).fit(X * 1e3, y * 1e6)


def test_pipeline_in_grid_search():
    X, y = classification(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=60, learning_rate_init=0.01,
                                                       random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (32,)],
                               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_score_ > 0.7
    assert grid.score(X, y) > 0.7
    assert isinstance(grid.best_estimator_[-1].model_, fastmlp.MLP)


def test_unfitted_estimators_say_so():
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(np.zeros((2, 3)))
    assert not hasattr(MLPClassifier(), "coefs_")


def test_repr_is_scikit_learns():
    buffer = io.StringIO()
    print(MLPClassifier(hidden_layer_sizes=(5,)), file=buffer)
    assert buffer.getvalue().strip() == "MLPClassifier(hidden_layer_sizes=(5,))"
