"""The CUDA backend (fit/protocols.Backend): a model's buffers on the device and the
launches over them, for as long as the model lives; one fit is a CudaRun (cuda/run.py).

The twin of cpu/backend.py, with the same members and results; model.py holds one of the two
and the fit loop drives either's run. The host keeps a Workspace mirror for what stays on
the host (the shuffling RNG; the state, copied on demand by get_state) and cuda/rows.py has
the drivers of inference, loss and gradients on host rows.
"""

import numpy as np

from .. import config
from ..core.spec import ACTIVATION
from ..core.workspace import Workspace
from ..inputs.validation import check_finite
from . import rows
from .run import CudaRun
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

    def ensure_rows(self, batch):
        """The row capacity of the device buffers, grown to hold `batch` rows if needed."""
        self.dws.ensure_rows(max(batch, config.MIN_WORKSPACE_ROWS))
        return self.dws.rows

    # -- inference, loss and gradients ---------------------------------------------------
    def check_finite_first(self, X, what):
        check_finite(X, what)  # as fit/protocols.py says; the device's pass does not
        return None

    def forward_rows(self, X, unchecked=None):
        if unchecked:
            check_finite(X, unchecked)
        self.ensure_rows(1)
        out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
        rows.forward_rows(out, self.dws, X)
        return out

    def loss_rows(self, X, T, objective, weights=None):
        """As cpu/backend.CpuBackend.loss_rows."""
        check_codes(self.spec, objective.loss)
        self.ensure_rows(1)
        return rows.loss_rows(self.dws, X, T, objective, weights)

    def gradient_rows(self, X, T, objective, weights=None):
        """As cpu/backend.CpuBackend.gradient_rows."""
        check_codes(self.spec, objective.loss)
        self.ensure_rows(X.shape[0])
        rows.gradient_rows(self.dws, X, T, objective, weights)
        return self.dws.grads.copy_to_host()

    # -- one fit -------------------------------------------------------------------------
    def start(self, plan):
        """One fit of `plan` (fit/plan.FitPlan): a CudaRun at its first segment, after
        refusing a code the device kernels have no branch for."""
        check_codes(self.spec, plan.objective.loss, plan.optimizer)
        return CudaRun(self, plan)
