"""MLP: validates input once, owns one backend (cpu/backend.py or cuda/backend.py), builds
one FitPlan per fit (fit/plan.py) and hands both to the loop (fit/loop.py). The only module
that touches MLP's underscored members."""
import numbers
import threading

import numpy as np

from .core import losses
from .core.activations import CLASSIFIER_OUTPUTS
from .cpu.backend import CpuBackend
from .core.init import check_init, initialise
from .core.optimizers import make_optimizer
from .core.spec import NetworkSpec
from .core.workspace import Workspace
from .fit import scores
from .fit.plan import Objective, check_options, make_plan
from .inputs.labels import encode_labels
from .core.sample_weight import check_sample_weight
from .inputs.numbers import check_bool
from .inputs.features import align, check_names
from .inputs.validation import check_dtype, check_inputs, check_targets, check_weights

DEVICES = ("cpu", "cuda")


def check_device(device):
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return device


def make_backend(device, spec, dtype, state=None):
    """The backend object of a device, holding `state` (get_state's dict) if given."""
    if device == "cuda":
        from .cuda.backend import CudaBackend  # imported only now: needs numba-cuda
        return CudaBackend(spec, dtype, state)
    return CpuBackend(spec, dtype, state)


class MLP:
    """A multilayer perceptron over `n_inputs` features, layers given as [(size, activation)].

    >>> m = MLP(2, [(2, "relu"), (1, "sigmoid")], seed=0)    # doctest: +SKIP
    """

    def __init__(self, n_inputs, layers, loss=None, optimizer=None, l2=0.0, init="auto",
                 dtype="float32", device="cpu", seed=None, *, l2_per_sample=False):
        self.spec = NetworkSpec(n_inputs, layers)
        out = self.spec.output_activation
        self.loss_name = losses.default_loss(out) if loss is None else loss
        self._loss_code = losses.loss_code(self.loss_name, out)
        self.optimizer = make_optimizer(optimizer)
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0 \
                or not np.isfinite(l2):
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        self.l2 = float(l2)
        #: False: the l2 term is (l2/2) sum ||W||^2 per batch; True: scikit-learn's alpha
        #: convention, 0.5 * l2 * sum ||W||^2 / (the batch's weight sum, its rows unweighted)
        self.l2_per_sample = check_bool(l2_per_sample, "l2_per_sample")
        self.init = check_init(init)
        self.dtype = check_dtype(dtype)
        device = check_device(device)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError(f"seed must be None or a non-negative integer; got {seed!r}")
        self.seed = seed
        #: class labels as given to fit (any type), or None until a classifier is fitted
        self.classes_ = None
        #: the column names of the DataFrame fit was given (a numpy array of str), or None
        self.feature_names_in_ = None
        # One fit, prediction or weight change at a time: the kernels release the GIL and
        # share the model's buffers, so a second thread waits for the first (re-entrant, so
        # a callback may evaluate the model during fit).
        self._lock = threading.RLock()
        self._backend = self._initial_backend()
        self.device = "cpu"
        self.to(device)

    def _initial_backend(self):
        """A CPU backend holding the weights, optimizer state and shuffle state the seed
        gives (what a new model starts from, and what reset() returns to)."""
        start = Workspace(self.spec, self.dtype)
        rng = np.random.default_rng(self.seed)
        initialise(start, self.init, rng)
        start.rng[0] = rng.integers(0, 2**63, dtype=np.uint64)
        return CpuBackend(self.spec, self.dtype, start.get_state(np.zeros(0, np.int64)))

    def reset(self):
        """Start over: the initial weights of the seed, no optimizer state, no classes_."""
        with self._lock:
            state = self._initial_backend().get_state()
            self._backend = make_backend(self.device, self.spec, self.dtype, state)
            self.classes_ = self.feature_names_in_ = None
        return self

    # -- facts ---------------------------------------------------------------------------
    @property
    def n_inputs(self):
        return self.spec.n_inputs

    @property
    def layers(self):
        return self.spec.as_list()

    @property
    def is_classifier(self):
        return self.spec.output_activation in CLASSIFIER_OUTPUTS

    @property
    def loss_code(self):
        """The integer code of the loss (losses.LOSSES), as the kernels take it."""
        return self._loss_code

    @property
    def objective(self):
        """What fit minimises and loss() computes (fit/plan.Objective)."""
        return Objective(self._loss_code, self.l2, self.l2_per_sample)

    @property
    def backend(self):
        """The engine behind the model, a fit/protocols.Backend (CpuBackend, CudaBackend):
        for diagnostics and benchmarks; training and inference go through the methods."""
        return self._backend

    def __repr__(self):
        return (f"MLP(n_inputs={self.n_inputs}, layers={self.layers}, loss={self.loss_name!r}, "
                f"optimizer={self.optimizer!r}, l2={self.l2}, dtype={self.dtype.name!r}, "
                f"device={self.device!r})")

    # -- device ------------------------------------------------------------------------
    def to(self, device):
        """Move the model, weights and optimizer state, to "cpu" or "cuda"; returns self."""
        device = check_device(device)
        with self._lock:
            if device != self.device:
                self._backend = make_backend(device, self.spec, self.dtype,
                                             self._backend.get_state())
                self.device = device
        return self

    # -- input checks --------------------------------------------------------------------
    def as_arrays(self, X, y=None, what="X", sample_weight=None):
        """X, and y as targets when given, as the kernels take them: C-contiguous arrays of
        the model's dtype, X (n, n_inputs), targets (n, n_outputs); class labels of any type
        are mapped through classes_ (labels 0..k-1 index the outputs directly). Bad input
        raises a ValueError or TypeError saying how to fix it. Returns X, or (X, T), or
        (X, T, W) when sample_weight is given."""
        X = self._inputs(X, what)
        if y is None:
            return X
        return self._arrays(X, y, what, sample_weight, learn=False)

    def _inputs(self, X, what, learn=False, finite=True):
        """check_inputs of X's columns by name (inputs/features.py); fit keeps new names."""
        X, names = align(X, self.feature_names_in_, what, learn)
        X = check_inputs(X, self.spec.n_inputs, self.dtype, what, finite)
        if learn and names is not None and self.feature_names_in_ is None:
            self.feature_names_in_ = np.array(names, dtype=object)
        return X

    def _arrays(self, X, y, what, sample_weight, learn):
        """as_arrays for a checked X; learn: fit may set classes_ from y's labels."""
        target_what = "y" if what == "X" else what.replace("X", "y")
        T = check_targets(self._label_indices(y, target_what, learn), X.shape[0],
                          self.loss_name, self.spec.n_outputs, self.dtype, target_what)
        if sample_weight is None:
            return X, T
        w_what = "sample_weight" if what == "X" else what.replace("X", "sample_weight")
        return X, T, check_sample_weight(sample_weight, X.shape[0], w_what)

    def _label_indices(self, y, what, learn):
        """Class labels -> output indices (learning classes_ on fit's first sight of them);
        anything that is not a 1-D label vector of a classifier passes through unchanged."""
        if not (self.is_classifier and self.loss_name != "mse"):
            return y
        classes, indices = encode_labels(y, self.classes_, self.spec.n_outputs,
                                         self.spec.output_activation, what)
        if learn and classes is not None and self.classes_ is None:
            self.classes_ = classes
        return indices

    # -- inference -----------------------------------------------------------------------
    def forward(self, X):
        """Output activations, (samples, n_outputs), for any output activation."""
        X = self._inputs(X, "X", finite=False)
        unchecked = self._backend.check_finite_first(X, "X")  # before a fit's lock
        with self._lock:
            return self._backend.forward_rows(X, unchecked)

    def predict_proba(self, X):
        """Output activations of a sigmoid or softmax output layer (class probabilities)."""
        out = self.spec.output_activation
        if out not in ("sigmoid", "softmax"):
            raise ValueError(f"predict_proba needs a sigmoid or softmax output layer; this "
                             f"model's output is {out!r}: use forward() or predict()")
        return self.forward(X)

    def predict(self, X):
        """softmax: the class (samples,); sigmoid/step: (a >= 0.5), (samples,) for one output;
        classes come back as the labels given to fit (classes_), or as indices before any.
        Anything else: the output values, (samples,) for one output."""
        a = self.forward(X)
        out = self.spec.output_activation
        if out == "softmax":
            index = np.argmax(a, axis=1)
            return index if self.classes_ is None else self.classes_[index]
        if out in ("sigmoid", "step"):
            a = (a >= 0.5).astype(np.int64)
            if self.classes_ is not None and a.shape[1] == 1:
                return self.classes_[a[:, 0]]
        return a[:, 0] if a.shape[1] == 1 else a

    def loss(self, X, y, sample_weight=None):
        """The loss on (X, y) as one batch, l2 term included; with sample_weight, the
        weighted mean sum(w * l) / sum(w) over the rows."""
        X, T, W = self._checked(X, y, sample_weight)
        with self._lock:
            return self._backend.loss_rows(X, T, self.objective, W)

    def evaluate(self, X, y, sample_weight=None):
        """{'loss': ...} plus 'accuracy' for classifiers (sigmoid, softmax or step output);
        both weighted means with sample_weight."""
        X, T, W = self._checked(X, y, sample_weight)
        with self._lock:
            result = {"loss": self._backend.loss_rows(X, T, self.objective, W)}
            if self.is_classifier:
                result["accuracy"] = self._accuracy(X, T, W)
        return result

    def _accuracy(self, X, T, W=None):
        return scores.accuracy(self._backend.forward_rows(X), T, self.spec.output_activation, W)

    def gradients(self, X, y, sample_weight=None):
        """[(dW, db), ...] of loss(X, y, sample_weight) as one batch; the weights are not
        changed."""
        X, T, W = self._checked(X, y, sample_weight)
        with self._lock:
            grads = self._backend.gradient_rows(X, T, self.objective, W)
        return self._pairs(grads)

    def _checked(self, X, y, sample_weight, learn=False):
        X = self._inputs(X, "X", learn)
        arrays = self._arrays(X, y, "X", sample_weight, learn)
        return arrays if sample_weight is not None else (*arrays, None)

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y, epochs=None, batch_size=32, shuffle=True, validation_data=None,
            progress=True, sample_weight=None, validation_split=None, early_stopping=False,
            patience=10, min_delta=0.0, restore_best_weights=True, callbacks=None,
            schedule=None, reset=False, comm=None):
        """Train; returns a History (per epoch: loss, val_loss, val_accuracy, lr,
        grad_norms, seconds; best_epoch and stopped_early with early stopping).

        A second call continues from the current weights, optimizer state and shuffle
        sequence: fit(3 epochs) then fit(3 epochs) trains exactly as fit(6 epochs) does
        (to rounding if config.SPECIALIZE "auto" gave the calls different kernels).
        reset=True starts over from the seed instead (as reset()).

        epochs: None means 1 for SGD, Adam and AdamW, and max_iter for fastmlp.LBFGS, which
        trains full batch (an epoch is one of its iterations).
        sample_weight: per-row weights; each batch's loss is sum(w * l) / sum(w).
        validation_data: (X_val, y_val) or (X_val, y_val, w_val); validation_split: the
        fraction of (X, y) held out instead (stratified for classifiers, seeded by the
        model's seed). early_stopping: stop when the validation loss (the training loss
        without validation data) has not improved by min_delta for `patience` epochs, and
        with restore_best_weights go back to the best epoch's weights and optimizer state.
        callbacks: callables cb(model, history) run at each epoch end; returning False (or
        raising fastmlp.StopTraining) ends training there. schedule: a fastmlp.schedules
        learning-rate schedule. comm: an mpi4py communicator for data-parallel training.
        """
        from .fit import loop
        options = check_options(
            self.spec, self.optimizer, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
            progress=progress, early_stopping=early_stopping, patience=patience,
            min_delta=min_delta, restore_best_weights=restore_best_weights,
            callbacks=callbacks, schedule=schedule, reset=reset,
            validation_data=validation_data, validation_split=validation_split,
            distributed=comm is not None)
        with self._lock:
            if options.reset:
                self.reset()
            X, T, W = self._checked(X, y, sample_weight, learn=True)
            plan = make_plan(self, options, X, T, W, validation_data, validation_split)
            backend = self._backend
            if comm is not None:  # checks comm (and the extra) before anything compiled
                from .cpu.mpi import MpiBackend
                backend = MpiBackend(self._backend, comm)
                plan = plan if backend.rank == 0 else plan.quiet()
            accuracy = self._accuracy if self.is_classifier else None
            return loop.fit(backend, plan, owner=self, accuracy=accuracy)

    def partial_fit(self, X, y, batch_size=32, shuffle=True, sample_weight=None, progress=False):
        """Exactly one epoch over (X, y), continuing from the current state."""
        return self.fit(X, y, epochs=1, batch_size=batch_size, shuffle=shuffle,
                        sample_weight=sample_weight, progress=progress)

    # -- weights -------------------------------------------------------------------------
    def _pairs(self, flat):
        """[(W, b), ...] copies out of a flat parameter-sized vector, W shaped (n_in, n_out)."""
        return [(W.copy(), b.copy()) for W, b in self.spec.pairs(flat)]

    def get_weights(self):
        """[(W, b), ...] copies, W shaped (n_in, n_out)."""
        with self._lock:
            return self._pairs(self._backend.get_params())

    def set_weights(self, weights):
        """Replace every layer's (W, b); shapes must match, values must be real and finite."""
        flat = check_weights(weights, self.spec, self.dtype)
        with self._lock:
            self._backend.set_params(flat)  # only now, so a bad pair changes nothing

    # -- persistence ---------------------------------------------------------------------
    def _meta(self):
        meta = {"n_inputs": self.spec.n_inputs, "layers": self.spec.as_list(),
                "loss": self.loss_name, "optimizer": self.optimizer.config(), "l2": self.l2,
                "l2_per_sample": self.l2_per_sample, "init": self.init,
                "dtype": self.dtype.name, "seed": self.seed}
        if self.classes_ is not None:
            meta["classes"] = self.classes_.tolist()
        if self.feature_names_in_ is not None:
            meta["feature_names"] = list(self.feature_names_in_)
        return meta

    @classmethod
    def _from_parts(cls, meta, state, where="<pickle>"):
        """A CPU model from a description and the buffers of get_state (file or pickle)."""
        from . import io
        from .core.optimizers import from_config
        try:
            model = cls(meta["n_inputs"], [tuple(layer) for layer in meta["layers"]],
                        loss=meta["loss"], optimizer=from_config(meta["optimizer"]),
                        l2=meta["l2"], init=meta["init"], dtype=meta["dtype"],
                        seed=meta["seed"], l2_per_sample=meta.get("l2_per_sample", False))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where!r} holds an invalid model description: {exc}") from None
        expected = model._backend.get_state()
        expected.pop("perm")  # any length: the rows of the last fit
        io.check_arrays(where, state, expected)
        model._backend.set_state(state)
        if meta.get("classes") is not None:
            model.classes_ = io.check_classes(where, meta["classes"], model.spec.n_outputs)
        model.feature_names_in_ = check_names(meta.get("feature_names"), model.n_inputs, where)
        return model

    def save(self, path):
        """Write the model (spec, weights, optimizer and shuffle state, classes_) to a .npz
        file, atomically; returns the path written. load() gives a model that continues
        training exactly as this one would."""
        from . import io
        with self._lock:
            return io.write(path, self._meta(), self._backend.get_state())

    @classmethod
    def load(cls, path):
        """Read a model written by save(), on the CPU; ValueError naming the file if it is
        unusable."""
        from . import io
        meta, arrays = io.read(path, expect=io.model_layout)  # sizes checked first
        return cls._from_parts(meta, arrays, io.resolve(path))

    # -- export and description (fastmlp/export.py, fastmlp/summary.py) ---------------------
    def to_onnx(self, path):
        """Write the model as an ONNX graph (Gemm + activation nodes); the `onnx` extra."""
        from .export import to_onnx
        return to_onnx(self, path)

    def to_torch(self):
        """A torch.nn.Sequential computing forward(); the PyTorch extra."""
        from .export import to_torch
        return to_torch(self)

    @classmethod
    def from_torch(cls, module, **kwargs):
        """An MLP with the layers and weights of a torch.nn.Sequential of Linear layers, each
        followed by at most one ReLU, LeakyReLU(0.01), Sigmoid, Tanh or Softmax(dim=-1);
        kwargs go to MLP (loss, optimizer, dtype: by default the Linear weights')."""
        from .export import read_torch
        n_inputs, layers, weights, kwargs = read_torch(module, kwargs)
        model = cls(n_inputs, layers, **kwargs)
        model.set_weights(weights)
        return model

    def summary(self):
        """A per-layer table (shapes, parameters, activation) with totals, as a string."""
        from .summary import summary
        return summary(self)

    def __reduce__(self):
        """Pickle as description + buffers (no lock, no compiled objects); unpickles on the
        device it was on."""
        with self._lock:
            return (_unpickle, (self._meta(), self._backend.get_state(), self.device))


def _unpickle(meta, state, device):
    return MLP._from_parts(meta, state).to(device)
