"""MLPClassifier and MLPRegressor: scikit-learn 1.9's estimators of the same names, trained
by fastmlp's compiled loop."""
import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import column_or_1d, validate_data

from .base import BaseMLP


def _label_binarizer():
    # sklearn.preprocessing and sklearn.metrics (~0.1 s of imports) load when first used
    from sklearn.preprocessing import LabelBinarizer
    return LabelBinarizer()

_PARAMETERS = """
    Parameters
    ----------{loss}
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Units of each hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu', 'leaky_relu'}, default='relu'
        Activation of the hidden layers ('leaky_relu', slope 0.01, is fastmlp's own).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'adam' and 'sgd' train minibatches in fastmlp's compiled loop; 'lbfgs' is
        fastmlp.LBFGS, full batch (scipy's L-BFGS-B over the compiled loss and gradient).
    alpha : float, default=1e-4
        L2 penalty, scaled as scikit-learn's: 0.5 * alpha * sum ||W||^2 / (the batch's
        sample-weight sum) per batch.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is min(200, n_samples).
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule of solver='sgd': invscaling uses learning_rate_init / (t_ + 1) ** power_t
        from each epoch's end on; adaptive divides the rate by 5 when the tol rule fires.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs for the minibatch solvers, iterations for 'lbfgs'.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights (as scikit-learn's, so the same seed starts from the
        same weights), the early-stopping split and the seed of fastmlp's shuffle.
    tol : float, default=1e-4
    verbose : bool or int, default=False
        Print ``Iteration N, loss = ...`` after each epoch.
    warm_start : bool, default=False
        Start the next fit from the current weights (with a new optimizer, as
        scikit-learn; partial_fit keeps the optimizer state).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out validation_fraction of the data (stratified for single-output
        classifiers) and stop when its score stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
    beta_1 : float, default=0.9
    beta_2 : float, default=0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Loss evaluations of 'lbfgs'.
    dtype : {'float32', 'float64'} or None, default=None
        fastmlp's precision. None follows the input as scikit-learn does (float32 X trains
        and stores coefs_ in float32, anything else in float64); 'float32' is faster.
    device : {'cpu', 'cuda'}, default='cpu'
        Where fastmlp trains (cuda needs the fastmlp[cuda] extra and a GPU).

    Sparse X (scipy CSR/CSC) is accepted and densified once per call: the compiled kernels
    take dense rows, so the dense copy must fit in memory.
"""

_LOSS = """
    loss : {'squared_error'}, default='squared_error'
        Half the squared error. scikit-learn's 'poisson' is not available: fastmlp has no
        exponential output layer."""

_ATTRIBUTES = """
    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_,
    coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_,
    n_outputs_, out_activation_
        As scikit-learn's. coefs_ and intercepts_ are copies of model_'s weights (assign
        new lists to change them).
    model_ : fastmlp.MLP
        The trained network.
"""


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = ("Multi-layer perceptron classifier, scikit-learn's MLPClassifier on fastmlp.\n\n"
               "    Binary targets get one logistic output, multi-class targets a softmax,\n"
               "    a 2-D 0/1 indicator matrix one logistic output per label; labels may be\n"
               "    of any type.\n" + _PARAMETERS.replace("{loss}", "") + _ATTRIBUTES +
               "    classes_ : ndarray or list of ndarray\n        Class labels.\n")

    _parameter_constraints: dict = {**BaseMLP._parameter_constraints}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, device="cpu"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dtype=dtype, device=device)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and labels y; returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # incremental warm_start classes_ known -> define classes_ unless a warm start or a
        # partial_fit continues, which must see classes it already knows (scikit-learn's rule)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = _label_binarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def predict(self, X):
        """Predicted class labels, (n_samples,) (or an indicator matrix for multi-label)."""
        self._check_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        from sklearn.metrics import accuracy_score
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.
        classes (every label of the whole data) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = _label_binarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns ordered as classes_."""
        self._check_fitted()
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = ("Multi-layer perceptron regressor, scikit-learn's MLPRegressor on fastmlp.\n\n"
               "    An identity output per target, trained on the squared error.\n"
               + _PARAMETERS.replace("{loss}", _LOSS) + _ATTRIBUTES)

    _parameter_constraints: dict = {**BaseMLP._parameter_constraints,
                                    "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, device="cpu"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dtype=dtype, device=device)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and targets y; returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def predict(self, X):
        """Predicted values, (n_samples,) or (n_samples, n_outputs)."""
        self._check_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _score(self, X, y, sample_weight=None):
        from sklearn.metrics import r2_score
        return self._score_with_function(X, y, sample_weight, r2_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
