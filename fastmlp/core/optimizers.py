"""Optimizer settings: codes, the hyper-parameter layout and the update variants, one home
above both twins. The state (moments, step count) lives in the model's flat buffers and the
update runs in cpu/optim.py or cuda/optim.py; these classes only validate and carry
hyper-parameters."""
import math
import numbers

import numpy as np

# Integer codes handed to the kernels (which raise, or refuse at the edge, on any other).
SGD_CODE, ADAM_CODE, ADAMW_CODE = 0, 1, 2
CODES = (SGD_CODE, ADAM_CODE, ADAMW_CODE)
# Layout of the float64 hyper-parameter vector handed to the kernels.
LR, MOMENTUM, NESTEROV, BETA1, BETA2, EPS, WEIGHT_DECAY, N_HYPER = range(8)
# The update rules a kernel can hard-code (cpu/codegen.py generates one per variant): plain
# SGD, SGD with momentum, Nesterov SGD, Adam, AdamW. Every optimizer has exactly one.
VARIANTS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def _check_float(name, value, low=0.0, high=math.inf, low_open=False, high_open=False,
                 owner=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}{name} must be a number; got {type(value).__name__} "
                        f"{value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{owner}{name} must be in {lo}{low}, {high}{hi}; got {value}")
    return value


class Optimizer:
    #: the integer code the kernels dispatch on (one of CODES)
    code = None
    name = None
    #: the update rule, one of VARIANTS (the generated kernels hard-code it)
    variant = None

    def hyper(self):
        """The float64 vector of hyper-parameters in the kernels' layout (LR, MOMENTUM, ...)."""
        h = np.zeros(N_HYPER)
        for key, index in (("lr", LR), ("momentum", MOMENTUM), ("beta1", BETA1),
                           ("beta2", BETA2), ("eps", EPS), ("weight_decay", WEIGHT_DECAY)):
            h[index] = getattr(self, key, 0.0)
        h[NESTEROV] = float(getattr(self, "nesterov", False))
        return h

    def config(self):
        """JSON-able settings, enough to rebuild the optimizer (see from_config)."""
        return {"name": self.name, **{k: getattr(self, k) for k in self._fields}}

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.config() == other.config()


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD."""
    code = SGD_CODE
    name = "sgd"
    _fields = ("lr", "momentum", "nesterov")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        owner = "SGD: "
        self.lr = _check_float("lr", lr, owner=owner)
        self.momentum = _check_float("momentum", momentum, owner=owner)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be True or False; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0 (as in torch.optim.SGD)")
        self.nesterov = bool(nesterov)

    @property
    def variant(self):
        if self.momentum == 0:
            return "sgd"
        return "nesterov" if self.nesterov else "momentum"


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam."""
    code = ADAM_CODE
    name = "adam"
    variant = "adam"
    _fields = ("lr", "beta1", "beta2", "eps")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        owner = f"{type(self).__name__}: "
        self.lr = _check_float("lr", lr, owner=owner)
        self.beta1 = _check_float("beta1", beta1, 0.0, 1.0, high_open=True, owner=owner)
        self.beta2 = _check_float("beta2", beta2, 0.0, 1.0, high_open=True, owner=owner)
        self.eps = _check_float("eps", eps, owner=owner)


class AdamW(Adam):
    """Adam with decoupled weight decay on the weights (not the biases), as torch.optim.AdamW
    with the biases in a weight_decay=0 group."""
    code = ADAMW_CODE
    name = "adamw"
    variant = "adamw"
    _fields = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = _check_float("weight_decay", weight_decay, owner="AdamW: ")


class LBFGS(Optimizer):
    """Full-batch L-BFGS-B (scipy.optimize.minimize) over the flat parameter vector, the loss
    and gradient from the compiled kernels. Not a per-step update: it has no kernel code,
    and fit runs it through lbfgs.py. max_iter: iterations (fit's epochs cap them too);
    tol: scipy's gtol (the projected gradient's largest component), as scikit-learn's
    lbfgs solver; max_fun: loss evaluations."""
    name = "lbfgs"
    _fields = ("max_iter", "tol", "max_fun")

    def __init__(self, max_iter=200, tol=1e-5, max_fun=15000):
        for key, value in (("max_iter", max_iter), ("max_fun", max_fun)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"LBFGS: {key} must be a positive integer; got {value!r}")
        self.max_iter, self.max_fun = int(max_iter), int(max_fun)
        self.tol = _check_float("tol", tol, owner="LBFGS: ")


#: The per-step optimizers the kernels implement (each has a code and a variant).
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
#: Every optimizer by name, for make_optimizer and from_config.
ALL_OPTIMIZERS = {**OPTIMIZERS, "lbfgs": LBFGS}


def make_optimizer(optimizer):
    """None -> Adam(lr=1e-3); a name -> that optimizer with its defaults; an instance as is."""
    if optimizer is None:
        return Adam()
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        try:
            return ALL_OPTIMIZERS[optimizer.lower()]()
        except KeyError:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                             f"{', '.join(sorted(ALL_OPTIMIZERS))} or pass fastmlp.SGD(...), "
                             f"fastmlp.Adam(...) or fastmlp.AdamW(...)") from None
    raise TypeError(f"optimizer must be None, a name ({', '.join(sorted(OPTIMIZERS))}) or an "
                    f"instance of fastmlp.SGD/Adam/AdamW; got {type(optimizer).__name__}")


def from_config(config):
    config = dict(config)
    name = config.pop("name")
    return ALL_OPTIMIZERS[name](**config)
