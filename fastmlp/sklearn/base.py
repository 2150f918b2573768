"""What MLPClassifier and MLPRegressor share: parameters and their constraints, the network
and optimizer built from them, scikit-learn's initial weights, and the two training paths
(minibatch through MLP.fit, full batch through fastmlp.LBFGS).

The estimator keeps scikit-learn's bookkeeping (n_iter_, t_, loss_curve_, the tol /
n_iter_no_change rule) in Python once per epoch (epochs.py); every minibatch, and the
learning-rate schedule, runs inside fastmlp's compiled loop, one fit per call.
"""
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import LBFGS, MLP, SGD, Adam, config
from ..core.activations import SKLEARN_HIDDEN, sklearn_names
from ..core.losses import default_loss
from ..inputs.split import split_rows
from .epochs import EpochRule, epoch_rules, weight_sum

def _output(out_activation):
    """(fastmlp activation, fastmlp loss) of out_activation_ (scikit-learn's name: each
    record's sklearn_name). The loss is the canonical one, so the output delta is
    (A - T) / batch weight, as in scikit-learn's _backprop."""
    activation = sklearn_names(hidden=False)[out_activation]
    return activation, default_loss(activation)


STOCHASTIC_SOLVERS = ("sgd", "adam")


class BaseMLP(BaseEstimator):
    """Base class of fastmlp.sklearn's MLPClassifier and MLPRegressor (not for direct use)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(SKLEARN_HIDDEN)],  # leaky_relu is fastmlp's addition
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}),
                  Options(type, {np.float32, np.float64})],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size,
                 learning_rate, learning_rate_init, power_t, max_iter, loss, shuffle,
                 random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                 early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                 n_iter_no_change, max_fun, dtype, device):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.device = device

    # -- the weights, read from (and written to) the fastmlp model -------------------------
    @property
    def coefs_(self):
        """Weight matrices, (n_in, n_out) per layer: copies of model_'s weights."""
        return [W for W, _ in self.model_.get_weights()]

    @coefs_.setter
    def coefs_(self, coefs):
        self.model_.set_weights(list(zip(coefs, self.intercepts_)))

    @property
    def intercepts_(self):
        """Bias vectors, (n_out,) per layer: copies of model_'s biases."""
        return [b for _, b in self.model_.get_weights()]

    @intercepts_.setter
    def intercepts_(self, intercepts):
        self.model_.set_weights(list(zip(self.coefs_, intercepts)))

    # -- fitting -----------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        # Sparse input is densified once per fit: the kernels take dense rows.
        X = X.toarray() if sp.issparse(X) else X
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [X.shape[1]] + hidden + [y.shape[1]]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            start = self._initialize(y, layer_units, X.dtype)
        elif self._layer_units != layer_units:
            raise ValueError(f"cannot continue training a network of layer sizes "
                             f"{self._layer_units} with layer sizes {layer_units}; set "
                             f"warm_start=False (or refit) to change hidden_layer_sizes")
        else:
            start = self.model_.get_weights()
        if self.solver in STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, start, incremental,
                                 continuing=incremental and not first_pass
                                 and not isinstance(self.model_.optimizer, LBFGS))
        else:
            self._fit_lbfgs(X, y, sample_weight, start)
        return self

    def _initialize(self, y, layer_units, dtype):
        """First fit: scikit-learn's attributes, and its initial weights (returned), drawn
        from the same random_state in the same order."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self._layer_units = layer_units
        if not is_classifier(self):
            self.out_activation_ = "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:  # binary (one logistic output) and multi-label (one per label)
            self.out_activation_ = "logistic"
        self._dtype = np.dtype(dtype if self.dtype is None else self.dtype)
        weights = [self._init_coef(fan_in, fan_out, self._dtype)
                   for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:])]
        self._best_weights = [(W.copy(), b.copy()) for W, b in weights]
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._stopping = self._lr_schedule = None  # epochs.epoch_rules makes new ones
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        return weights

    def _init_coef(self, fan_in, fan_out, dtype):
        # Glorot et al.'s uniform bound, with factor 2 for logistic units, as scikit-learn:
        # the same random_state gives the same starting weights.
        factor = 2.0 if self.activation == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-bound, bound, fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _new_model(self, weights):
        """A fastmlp.MLP with this estimator's hyper-parameters holding `weights`; its
        optimizer state starts empty and its shuffle seed comes from the random_state
        (drawn after scikit-learn's own draws: initial weights, validation split)."""
        units = self._layer_units
        activation = sklearn_names(hidden=True)[self.activation]
        output, loss = _output(self.out_activation_)
        layers = [(n, activation) for n in units[1:-1]] + [(units[-1], output)]
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        model = MLP(units[0], layers, loss=loss, optimizer=self._optimizer(), l2=self.alpha,
                    init="zeros", dtype=self._dtype, device=self.device, seed=seed,
                    l2_per_sample=True)
        model.set_weights(weights)
        return model

    def _optimizer(self):
        if self.solver == "sgd":
            return SGD(lr=self.learning_rate_init, momentum=self.momentum,
                       nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        if self.solver == "adam":
            return Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                        eps=self.epsilon)
        return LBFGS(max_iter=self.max_iter, tol=self.tol, max_fun=self.max_fun)

    def _targets(self, y):
        return np.ascontiguousarray(y, dtype=self._dtype)

    def _fit_stochastic(self, X, y, sample_weight, start, incremental, continuing):
        """incremental: one epoch (partial_fit); continuing: a partial_fit after the first,
        which keeps the model and its optimizer state. Any other fit gets a new optimizer,
        warm start or not, as scikit-learn's (moments and step count start over)."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X_val = y_val = sample_weight_val = None
        if self.early_stopping:
            X, X_val, y, y_val, sample_weight, sample_weight_val = self._split(
                X, y, sample_weight)
        if not continuing:
            self.model_ = self._new_model(start)
        n_samples = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        self._stopping, self._lr_schedule = epoch_rules(self, continuing)
        rule = EpochRule(self, n_samples, batch_size, (X_val, y_val, sample_weight_val),
                         weight_sum(n_samples, sample_weight))
        self.n_iter_ = 0
        epochs = 1 if incremental else self.max_iter
        try:
            self._run_epochs(rule, X, self._targets(y), sample_weight, epochs, batch_size)
        except FloatingPointError as exc:
            raise ValueError(f"Solver produced non-finite parameter weights. The input data "
                             f"may contain large values and need to be preprocessed. ({exc})"
                             ) from exc
        if rule.interrupted:
            warnings.warn("Training interrupted by user.")
        elif not incremental and not rule.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning)
        if self.early_stopping:
            self.model_.set_weights(self._best_weights)

    def _run_epochs(self, rule, X, T, sample_weight, epochs, batch_size):
        """One compiled fit of `epochs` epochs, the learning-rate schedule inside it and the
        rule at each epoch end. A History merges epochs past config.HISTORY_MAX_ENTRIES and
        the rule reads the last epoch's loss, so a longer run is split (fits continue
        exactly, the schedule's counters too)."""
        kwargs = dict(batch_size=batch_size, shuffle=self.shuffle, progress=False,
                      sample_weight=sample_weight, callbacks=[rule],
                      schedule=self._lr_schedule)
        while epochs > 0 and not (rule.stopped or rule.interrupted):
            chunk = min(epochs, config.HISTORY_MAX_ENTRIES)
            rule.note(self.model_.fit(X, T, epochs=chunk, **kwargs))
            epochs -= chunk

    def _split(self, X, y, sample_weight):
        """scikit-learn's early-stopping split: train_test_split on the estimator's
        random_state, stratified for single-output classifiers."""
        stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
        train, val = split_rows(X.shape[0], self.validation_fraction, self._random_state,
                                stratify)
        X_train, X_val, y_train, y_val = X[train], X[val], y[train], y[val]
        w_train, w_val = (None, None) if sample_weight is None else \
            (sample_weight[train], sample_weight[val])
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        if is_classifier(self):
            y_val = self._label_binarizer.inverse_transform(y_val)
        return X_train, X_val, y_train, y_val, w_train, w_val

    def _fit_lbfgs(self, X, y, sample_weight, start):
        self.model_ = self._new_model(start)
        try:
            history = self.model_.fit(X, self._targets(y), epochs=self.max_iter,
                                      sample_weight=sample_weight, progress=False)
        except FloatingPointError as exc:
            raise ValueError(f"Solver produced non-finite parameter weights. The input data "
                             f"may contain large values and need to be preprocessed. ({exc})"
                             ) from exc
        result = history.lbfgs
        self.n_iter_ = min(int(result.nit), self.max_iter)
        self.loss_ = self._sklearn_loss(float(result.fun), 1,
                                        weight_sum(X.shape[0], sample_weight))
        if self.verbose:
            for i, value in enumerate(history.loss, 1):
                print("Iteration %d, loss = %.8f" % (i, value))
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"(status={result.status}):\n{result.message}\n\nIncrease the "
                          f"number of iterations (max_iter) or scale the data.",
                          ConvergenceWarning)

    def _sklearn_loss(self, value, batches, weight_sum):
        """fastmlp's loss as scikit-learn reports it. They agree except for multi-output
        squared error, where fastmlp sums the half squares over the outputs (the loss whose
        gradient both follow) and scikit-learn averages them: its data term is ours / n_outputs,
        its l2 term the same (here from the current weights, batches l2 terms per epoch)."""
        if self.out_activation_ != "identity" or self.n_outputs_ == 1:
            return value
        squares = sum(float(np.dot(W.ravel(), W.ravel())) for W in self.coefs_)
        l2 = 0.5 * self.alpha * squares * batches / weight_sum
        return (value - l2) / self.n_outputs_ + l2

    # -- prediction ----------------------------------------------------------------------
    def _forward(self, X, check_input=True):
        """Output activations (n_samples, n_outputs) from the compiled forward pass."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        X = X.toarray() if sp.issparse(X) else X
        return self.model_.forward(X)

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Score without input validation (which would drop feature names), NaN when the
        predictions are not finite, as scikit-learn's early stopping does."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_fitted(self):
        check_is_fitted(self, "model_")
