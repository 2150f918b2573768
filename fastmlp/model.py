"""MLP: validates input, owns a Workspace, dispatches to the compiled kernels."""
import numbers

import numpy as np

from . import losses
from .activations import CLASSIFIER_OUTPUTS
from .config import MIN_WORKSPACE_ROWS
from .cpu import train as cpu_train
from .init import check_init, initialise
from .optimizers import make_optimizer
from .spec import NetworkSpec
from .validation import check_dtype, check_inputs, check_targets
from .workspace import Workspace

DEVICES = ("cpu", "cuda")


def check_device(device):
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return device


def _cuda_train():
    """fastmlp.cuda.train; imported on first use, after `to` has checked for CUDA."""
    from .cuda import train
    return train


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
        self._host = Workspace(self.spec, self.dtype)
        self._device_ws = None  # a cuda.workspace.DeviceWorkspace while on "cuda"
        self.device = "cpu"
        rng = np.random.default_rng(seed)
        initialise(self._host, self.init, rng)
        self._host.rng[0] = rng.integers(0, 2**63, dtype=np.uint64)
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

    def __repr__(self):
        return (f"MLP(n_inputs={self.n_inputs}, layers={self.layers}, loss={self.loss_name!r}, "
                f"optimizer={self.optimizer!r}, l2={self.l2}, dtype={self.dtype.name!r}, "
                f"device={self.device!r})")

    # -- device ------------------------------------------------------------------------
    def to(self, device):
        """Move the model, weights and optimizer state, to "cpu" or "cuda"; returns self."""
        device = check_device(device)
        if device == self.device:
            return self
        if device == "cuda":
            from .cuda.device import require_cuda
            require_cuda()  # a RuntimeError that says what to install or set
            from .cuda.workspace import DeviceWorkspace
            self._device_ws = DeviceWorkspace(self._host)
        else:
            self._device_ws.download(self._host)
            self._device_ws = None
        self.device = device
        return self

    @property
    def _ws(self):
        """The host Workspace; on "cuda", first brought up to date from the device (the
        device holds the training state, the host a copy made on demand)."""
        if self._device_ws is not None:
            self._device_ws.download(self._host)
        return self._host

    # -- internals -----------------------------------------------------------------------
    def _inputs(self, X, what="X"):
        return check_inputs(X, self.spec.n_inputs, self.dtype, what)

    def _targets(self, y, n, what="y"):
        return check_targets(y, n, self.loss_name, self.spec.n_outputs, self.dtype, what)

    def _data(self, X, y):
        X = self._inputs(X)
        return X, self._targets(y, X.shape[0])

    def _rows(self, batch):
        ws = self._host if self._device_ws is None else self._device_ws
        ws.ensure_rows(max(batch, MIN_WORKSPACE_ROWS))
        return ws.rows

    def _forward(self, X):
        if self._device_ws is not None:
            self._rows(1)
            out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
            _cuda_train().forward_rows(out, self._device_ws, X)
            return out
        ws = self._ws
        rows = self._rows(1)
        out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
        cpu_train.forward_rows(out, ws.acts, ws.logits, ws.deltas, X, ws.params, self.spec.table,
                               rows)
        return out

    def _loss(self, X, T):
        if self._device_ws is not None:
            self._rows(1)
            return _cuda_train().loss_rows(self._device_ws, X, T, self._loss_code, self.l2)
        ws = self._ws
        rows = self._rows(1)
        return float(cpu_train.loss_rows(ws.acts, ws.logits, ws.deltas, X, T, ws.params,
                                         self.spec.table, rows, self._loss_code,
                                         self.spec.n_weights, self.l2))

    # -- inference -----------------------------------------------------------------------
    def forward(self, X):
        """Output activations, (samples, n_outputs), for any output activation."""
        return self._forward(self._inputs(X))

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
        X, T = self._data(X, y)
        return self._loss(X, T)

    def evaluate(self, X, y):
        """{'loss': ...} plus 'accuracy' for classifiers (sigmoid, softmax or step output)."""
        X, T = self._data(X, y)
        result = {"loss": self._loss(X, T)}
        if self.is_classifier:
            a = self._forward(X)
            if self.spec.output_activation == "softmax":
                correct = np.argmax(a, axis=1) == np.argmax(T, axis=1)
            else:
                correct = (a >= 0.5) == (T >= 0.5)
            result["accuracy"] = float(np.mean(correct))
        return result

    def gradients(self, X, y):
        """[(dW, db), ...] of loss(X, y) on (X, y) as one batch; the weights are not changed."""
        X, T = self._data(X, y)
        rows = self._rows(X.shape[0])
        if self._device_ws is not None:
            dws = self._device_ws
            _cuda_train().gradient_rows(dws, X, T, self._loss_code, self.l2)
            grads = dws.grads.copy_to_host()
            return [(dW.copy(), db.copy()) for dW, db in self._host.pairs(grads)]
        ws = self._ws
        cpu_train.gradient_rows(ws.grads, ws.acts, ws.logits, ws.deltas, X, T, ws.params,
                                self.spec.table, rows, self._loss_code, self.spec.n_weights,
                                self.l2)
        return [(dW.copy(), db.copy()) for dW, db in ws.pairs(ws.grads)]

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            progress=True):
        """Train; returns a History (per-epoch loss, val_loss, grad_norms, seconds)."""
        from .training import fit
        return fit(self, X, y, epochs, batch_size, shuffle, validation_data, progress)

    # -- weights -------------------------------------------------------------------------
    def get_weights(self):
        """[(W, b), ...] copies, W shaped (n_in, n_out)."""
        return [(W.copy(), b.copy()) for W, b in self._ws.pairs(self._ws.params)]

    def set_weights(self, weights):
        """Replace every layer's (W, b); shapes must match, values must be real and finite."""
        n = len(self.spec.layers)
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError("set_weights takes a list of (W, b) pairs, one per layer")
        if len(weights) != n:
            raise ValueError(f"set_weights got {len(weights)} (W, b) pairs but the model has "
                             f"{n} layers")
        checked = []
        for l, (pair, layer) in enumerate(zip(weights, self.spec.layers)):
            if not hasattr(pair, "__len__") or len(pair) != 2:
                raise TypeError(f"layer {l}: expected a (W, b) pair; got {type(pair).__name__}")
            W = self._weight_array(pair[0], (layer.n_in, layer.n_out), f"layer {l} W")
            b = self._weight_array(pair[1], (layer.n_out,), f"layer {l} b")
            checked.append((W, b))
        ws = self._ws
        for l, (W, b) in enumerate(checked):  # only now, so a bad pair changes nothing
            ws.weights(l)[:] = W
            ws.bias(l)[:] = b
        if self._device_ws is not None:
            self._device_ws.upload_params(ws)

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
    def save(self, path):
        """Write the model (spec, weights, optimizer state) to a .npz file, atomically."""
        from .io import save
        return save(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by save(); ValueError naming the file if it is unusable."""
        from .io import load
        return load(path)
