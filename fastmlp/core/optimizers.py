"""Optimizer settings: codes, the hyper-parameter layout and the update variants, one home
above both twins. The state (moments, step count) lives in the model's flat buffers and the
update runs in cpu/optim.py or cuda/optim.py; these classes only validate and carry
hyper-parameters."""

import numpy as np

from ..inputs.numbers import check_bool, check_real, check_size

# Integer codes handed to the kernels (which raise, or refuse at the edge, on any other).
SGD_CODE, ADAM_CODE, ADAMW_CODE = 0, 1, 2
CODES = (SGD_CODE, ADAM_CODE, ADAMW_CODE)
# Layout of the float64 hyper-parameter vector handed to the kernels.
LR, MOMENTUM, NESTEROV, BETA1, BETA2, EPS, WEIGHT_DECAY, N_HYPER = range(8)
# The update rules a kernel can hard-code (cpu/codegen.py generates one per variant): plain
# SGD, SGD with momentum, Nesterov SGD, Adam, AdamW. Every optimizer has exactly one.
VARIANTS = ("sgd", "momentum", "nesterov", "adam", "adamw")


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
        self.lr = check_real(lr, f"{owner}lr", 0.0, interval=True)
        self.momentum = check_real(momentum, f"{owner}momentum", 0.0, interval=True)
        nesterov = check_bool(nesterov, f"{owner}nesterov")
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
        self.lr = check_real(lr, f"{owner}lr", 0.0, interval=True)
        self.beta1 = check_real(beta1, f"{owner}beta1", 0.0, 1.0, high_open=True, interval=True)
        self.beta2 = check_real(beta2, f"{owner}beta2", 0.0, 1.0, high_open=True, interval=True)
        self.eps = check_real(eps, f"{owner}eps", 0.0, interval=True)


class AdamW(Adam):
    """Adam with decoupled weight decay on the weights (not the biases), as torch.optim.AdamW
    with the biases in a weight_decay=0 group."""
    code = ADAMW_CODE
    name = "adamw"
    variant = "adamw"
    _fields = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = check_real(weight_decay, "AdamW: weight_decay", 0.0,
                                       interval=True)


class LBFGS(Optimizer):
    """Full-batch L-BFGS-B (scipy.optimize.minimize) over the flat parameter vector, the loss
    and gradient from the compiled kernels. Not a per-step update: it has no kernel code,
    and fit runs it through lbfgs.py. max_iter: iterations (fit's epochs cap them too);
    tol: scipy's gtol (the projected gradient's largest component), as scikit-learn's
    lbfgs solver; max_fun: loss evaluations."""
    name = "lbfgs"
    _fields = ("max_iter", "tol", "max_fun")

    def __init__(self, max_iter=200, tol=1e-5, max_fun=15000):
        self.max_iter = check_size(max_iter, "LBFGS: max_iter")
        self.max_fun = check_size(max_fun, "LBFGS: max_fun")
        self.tol = check_real(tol, "LBFGS: tol", 0.0, interval=True)


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
