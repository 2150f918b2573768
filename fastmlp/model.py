"""MLP: validates input once, owns one backend (cpu/backend.py or cuda/backend.py), and hands
both to training.fit. The only module that touches MLP's underscored members."""
import numbers

import numpy as np

from . import losses
from .activations import CLASSIFIER_OUTPUTS
from .cpu.backend import CpuBackend
from .init import check_init, initialise
from .optimizers import make_optimizer
from .spec import NetworkSpec
from .validation import check_bool, check_dtype, check_inputs, check_int, check_targets

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
                 dtype="float32", device="cpu", seed=None):
        self.spec = NetworkSpec(n_inputs, layers)
        out = self.spec.output_activation
        self.loss_name = losses.default_loss(out) if loss is None else loss
        self._loss_code = losses.loss_code(self.loss_name, out)
        self.optimizer = make_optimizer(optimizer)
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0 \
                or not np.isfinite(l2):
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        self.l2 = float(l2)
        self.init = check_init(init)
        self.dtype = check_dtype(dtype)
        device = check_device(device)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError(f"seed must be None or a non-negative integer; got {seed!r}")
        self.seed = seed
        host = CpuBackend(self.spec, self.dtype)
        rng = np.random.default_rng(seed)
        initialise(host.ws, self.init, rng)
        host.ws.rng[0] = rng.integers(0, 2**63, dtype=np.uint64)
        self._backend = host
        self.device = "cpu"
        self.to(device)

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
    def backend(self):
        """The engine behind the model (cpu/backend.CpuBackend or cuda/backend.CudaBackend):
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
        if device != self.device:
            self._backend = make_backend(device, self.spec, self.dtype,
                                         self._backend.get_state())
            self.device = device
        return self

    # -- input checks --------------------------------------------------------------------
    def as_arrays(self, X, y=None, what="X"):
        """X, and y as targets when given, as the kernels take them: C-contiguous arrays of
        the model's dtype, X (n, n_inputs), targets (n, n_outputs). Bad input raises a
        ValueError or TypeError saying how to fix it. Returns X, or (X, T)."""
        X = check_inputs(X, self.spec.n_inputs, self.dtype, what)
        if y is None:
            return X
        target_what = "y" if what == "X" else what.replace("X", "y")
        return X, check_targets(y, X.shape[0], self.loss_name, self.spec.n_outputs,
                                self.dtype, target_what)

    # -- inference -----------------------------------------------------------------------
    def forward(self, X):
        """Output activations, (samples, n_outputs), for any output activation."""
        return self._backend.forward_rows(self.as_arrays(X))

    def predict_proba(self, X):
        """Output activations of a sigmoid or softmax output layer (class probabilities)."""
        out = self.spec.output_activation
        if out not in ("sigmoid", "softmax"):
            raise ValueError(f"predict_proba needs a sigmoid or softmax output layer; this "
                             f"model's output is {out!r}: use forward() or predict()")
        return self.forward(X)

    def predict(self, X):
        """softmax: argmax class (samples,); sigmoid/step: (a >= 0.5) as int, (samples,) for one
        output; anything else: the output values, (samples,) for one output."""
        a = self.forward(X)
        out = self.spec.output_activation
        if out == "softmax":
            return np.argmax(a, axis=1)
        if out in ("sigmoid", "step"):
            a = (a >= 0.5).astype(np.int64)
        return a[:, 0] if a.shape[1] == 1 else a

    def loss(self, X, y):
        """The loss on (X, y) as one batch, l2 term included."""
        X, T = self.as_arrays(X, y)
        return self._backend.loss_rows(X, T, self._loss_code, self.l2)

    def evaluate(self, X, y):
        """{'loss': ...} plus 'accuracy' for classifiers (sigmoid, softmax or step output)."""
        X, T = self.as_arrays(X, y)
        result = {"loss": self._backend.loss_rows(X, T, self._loss_code, self.l2)}
        if self.is_classifier:
            a = self._backend.forward_rows(X)
            if self.spec.output_activation == "softmax":
                correct = np.argmax(a, axis=1) == np.argmax(T, axis=1)
            else:
                correct = (a >= 0.5) == (T >= 0.5)
            result["accuracy"] = float(np.mean(correct))
        return result

    def gradients(self, X, y):
        """[(dW, db), ...] of loss(X, y) on (X, y) as one batch; the weights are not changed."""
        X, T = self.as_arrays(X, y)
        grads = self._backend.gradient_rows(X, T, self._loss_code, self.l2)
        return self._pairs(grads)

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            progress=True, comm=None):
        """Train; returns a History (per-epoch loss, val_loss, grad_norms, seconds).

        A second call continues from the current weights and optimizer state."""
        from .training import fit
        epochs = check_int(epochs, "epochs", 0)
        batch_size = check_int(batch_size, "batch_size", 1)
        shuffle = check_bool(shuffle, "shuffle")
        progress = check_bool(progress, "progress")
        frozen = self.spec.inference_only_layers()
        if frozen:
            names = ", ".join(f"layer {i} ({self.spec.layers[i].activation})" for i in frozen)
            raise ValueError(f"cannot fit a model with {names}: its derivative is zero almost "
                             f"everywhere, so gradients cannot train it; use sigmoid or relu "
                             f"to train, and 'step' only for hand-set weights with set_weights")
        X, T = self.as_arrays(X, y)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be an (X_val, y_val) pair")
            validation = self.as_arrays(*validation_data, what="validation X")
        backend = self._backend
        if comm is not None:  # TEMPORARY hook for issue 13 (branch mpi): the lead wires it
            from .distributed import MpiBackend
            backend = MpiBackend(self._backend, comm)
            progress = progress and backend.rank == 0
        return fit(backend, X, T, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                   validation=validation, progress=progress, loss=self._loss_code,
                   optimizer=self.optimizer, l2=self.l2)

    # -- weights -------------------------------------------------------------------------
    def _pairs(self, flat):
        """[(W, b), ...] copies out of a flat parameter-sized vector, W shaped (n_in, n_out)."""
        return [(W.copy(), b.copy()) for W, b in self.spec.pairs(flat)]

    def get_weights(self):
        """[(W, b), ...] copies, W shaped (n_in, n_out)."""
        return self._pairs(self._backend.get_params())

    def set_weights(self, weights):
        """Replace every layer's (W, b); shapes must match, values must be real and finite."""
        n = len(self.spec.layers)
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError("set_weights takes a list of (W, b) pairs, one per layer")
        if len(weights) != n:
            raise ValueError(f"set_weights got {len(weights)} (W, b) pairs but the model has "
                             f"{n} layers")
        flat = np.empty(self.spec.n_params, self.dtype)
        for l, (pair, layer) in enumerate(zip(weights, self.spec.layers)):
            if not hasattr(pair, "__len__") or len(pair) != 2:
                raise TypeError(f"layer {l}: expected a (W, b) pair; got {type(pair).__name__}")
            W = self._weight_array(pair[0], (layer.n_in, layer.n_out), f"layer {l} W")
            b = self._weight_array(pair[1], (layer.n_out,), f"layer {l} b")
            flat[self.spec.weight_slice(l)] = W.ravel()
            flat[self.spec.bias_slice(l)] = b
        self._backend.set_params(flat)  # only now, so a bad pair changes nothing

    def _weight_array(self, a, shape, what):
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{what} has dtype {arr.dtype}; weights must be real numbers "
                            f"(the model stores {self.dtype.name})")
        if arr.shape != shape:
            raise ValueError(f"{what} has shape {arr.shape}; expected {shape} "
                             f"(W is (n_in, n_out), b is (n_out,))")
        out = arr.astype(self.dtype)
        if not np.isfinite(out).all():
            raise ValueError(f"{what} contains NaN or infinite values (in {self.dtype.name})")
        return out

    # -- persistence ---------------------------------------------------------------------
    def _meta(self):
        return {"n_inputs": self.spec.n_inputs, "layers": self.spec.as_list(),
                "loss": self.loss_name, "optimizer": self.optimizer.config(), "l2": self.l2,
                "init": self.init, "dtype": self.dtype.name, "seed": self.seed}

    def save(self, path):
        """Write the model (spec, weights, optimizer state) to a .npz file, atomically;
        returns the path written."""
        from . import io
        return io.write(path, self._meta(), self._backend.get_state())

    @classmethod
    def load(cls, path):
        """Read a model written by save(); ValueError naming the file if it is unusable."""
        from . import io
        from .optimizers import from_config
        meta, arrays, where = io.read(path)
        try:
            model = cls(meta["n_inputs"], [tuple(layer) for layer in meta["layers"]],
                        loss=meta["loss"], optimizer=from_config(meta["optimizer"]),
                        l2=meta["l2"], init=meta["init"], dtype=meta["dtype"],
                        seed=meta["seed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where!r} holds an invalid model description: {exc}") from None
        expected = model._backend.get_state()
        io.check_arrays(where, arrays, expected)
        model._backend.set_state(arrays)
        return model
