"""The CUDA backend: a model's buffers on the device and the launches over them.

The twin of cpu/backend.py, with the same methods and results; model.py holds one of the two
and training.py drives either. The host keeps a Workspace mirror for what stays on the host
(the shuffling RNG; the state, copied on demand by get_state) and cuda/train.py has the
drivers (Trainer, forward_rows, loss_rows, gradient_rows).
"""

import numpy as np

from .. import config
from ..core.optimizers import LR
from ..core.schedules import check_schedule, current_lr
from ..core.spec import ACTIVATION
from ..core.status import OK
from ..core.sample_weight import check_sample_weight
from ..core.workspace import Workspace
from . import train
from .device import require_cuda
from .elementwise import HANDLED_ACTIVATIONS
from .loss import HANDLED_LOSSES
from .optim import HANDLED_OPTIMIZERS
from .workspace import DeviceWorkspace



def check_codes(spec, loss=None, optimizer=None):
    """Refuse, before any launch, a code the device kernels have no branch for: device code
    cannot raise, and a missing branch would compute something else."""
    for l, code in enumerate(spec.table[:, ACTIVATION]):
        if int(code) not in HANDLED_ACTIVATIONS:
            raise ValueError(f"the CUDA kernels have no branch for activation code {code} "
                             f"(layer {l}); add its branches to core/scalars.py")
    if loss is not None and loss not in HANDLED_LOSSES:
        raise ValueError(f"the CUDA kernels have no branch for loss code {loss}; add it to "
                         f"cuda/loss.py")
    if optimizer is not None and optimizer.code not in HANDLED_OPTIMIZERS:
        raise ValueError(f"the CUDA kernels have no update for optimizer "
                         f"{type(optimizer).__name__} (code {optimizer.code}); add it to "
                         f"cuda/optim.py")


class CudaBackend:
    device = "cuda"
    blas_limit = None  # the host's BLAS does no training work: left as it is

    def __init__(self, spec, dtype, state=None):
        require_cuda()  # a RuntimeError that says what to install or set
        check_codes(spec)
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.host = Workspace(spec, self.dtype)
        self.perm = np.zeros(0, np.int64)  # outlives a fit, as on the CPU
        if state is not None:
            perm = self.host.set_state(state)
            self.perm = self.perm if perm is None else perm
        self.dws = DeviceWorkspace(self.host)
        self.trainer = self.schedule = None

    # -- state ---------------------------------------------------------------------------
    def get_state(self):
        self.dws.download(self.host)
        return self.host.get_state(self.perm)

    def set_state(self, state):
        perm = self.host.set_state(state)
        if perm is not None:
            self.perm = perm
        self.dws.upload(self.host)

    def get_params(self):
        return self.dws.params.copy_to_host()

    def set_params(self, params):
        self.host.params[:] = params
        self.dws.upload_params(self.host)

    def _rows(self, batch):
        self.dws.ensure_rows(max(batch, config.MIN_WORKSPACE_ROWS))
        return self.dws.rows

    # -- inference, loss and gradients ---------------------------------------------------
    def forward_rows(self, X):
        self._rows(1)
        out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
        train.forward_rows(out, self.dws, X)
        return out

    def loss_rows(self, X, T, loss, l2, weights=None, l2_per_sample=False):
        """As cpu/backend.CpuBackend.loss_rows."""
        check_codes(self.spec, loss)
        self._rows(1)
        return train.loss_rows(self.dws, X, T, loss, l2, _weights(weights, X.shape[0]),
                               bool(l2_per_sample))

    def gradient_rows(self, X, T, loss, l2, weights=None, l2_per_sample=False):
        """As cpu/backend.CpuBackend.gradient_rows."""
        check_codes(self.spec, loss)
        self._rows(X.shape[0])
        train.gradient_rows(self.dws, X, T, loss, l2, _weights(weights, X.shape[0]),
                            bool(l2_per_sample))
        return self.dws.grads.copy_to_host()

    # -- training ------------------------------------------------------------------------
    def begin_fit(self, X, T, batch_size, shuffle, epochs, loss, optimizer, l2,
                  validation=None, *, weights=None, schedule=None, l2_per_sample=False,
                  fit_epochs=None):
        """As cpu/backend.CpuBackend.begin_fit (fit_epochs chooses nothing here)."""
        check_codes(self.spec, loss, optimizer)
        n_layers = len(self.spec.layers)
        w = _weights(weights, X.shape[0])
        self.schedule = check_schedule(schedule)
        if hasattr(self.schedule, "start"):  # ReduceOnPlateau: the rate it starts from
            self.schedule.start(optimizer.lr)
        self.base_lr = float(optimizer.hyper()[LR])
        if validation is not None:
            Xv, Tv, *rest = validation
            validation = (Xv, Tv, _weights(rest[0], Xv.shape[0]) if rest else None)
        self._rows(batch_size)  # the workspace holds a batch (and a chunk for inference)
        self.epoch_loss = np.zeros(epochs)
        self.epoch_grad_norm = np.zeros((epochs, n_layers))
        self.epoch_lr = np.full(epochs, np.nan)
        if self.perm.shape[0] != X.shape[0]:
            self.perm = np.arange(X.shape[0], dtype=np.int64)
        self.trainer = train.Trainer(self.dws, self.host.rng, X, T, batch_size, shuffle,
                                     epochs, self.epoch_loss, self.epoch_grad_norm,
                                     validation, loss, optimizer, l2, self.perm, weights=w,
                                     schedule=self.schedule, l2_per_sample=bool(l2_per_sample),
                                     epoch_lr=self.epoch_lr)

    def train_steps(self, n_steps):
        """Up to n_steps steps: (status, steps done). n_steps = 0 does nothing: the CPU's
        0-step call compiles its kernels before the timing, but the CUDA kernels compile
        at their first launch (per tile size, cached per process)."""
        if n_steps == 0:
            return OK, 0
        return self.trainer.train_steps(n_steps)

    def cursor(self):
        epoch, batch = self.trainer.cursor
        return int(epoch), int(batch)

    def current_lr(self):
        """The learning rate of the most recent update (of the next one before any; None
        before the first begin_fit)."""
        return current_lr(self.schedule, self.base_lr)

    def validation_loss(self):
        return self.trainer.validation_loss()

    def restore_if_overflowed(self):
        return self.trainer.restore_if_overflowed()


def _weights(weights, n):
    """None, or the checked float64 weights of n rows."""
    return None if weights is None else check_sample_weight(weights, n)
