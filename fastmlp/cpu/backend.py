"""The CPU backend: a model's buffers on the host and the compiled calls over them.

cuda/backend.py has the same methods; model.py holds one of the two and training.py drives
either through these methods alone:

  get_state / set_state          the persistent buffers (params, moments, step, rng), host copies
  get_params / set_params        the flat parameter vector alone
  forward_rows / loss_rows / gradient_rows    inference, the loss and its gradient on host data
  begin_fit / train_steps / validation_loss / restore_if_overflowed    one fit's compiled loop
"""
import numpy as np

from .. import config
from ..workspace import FitState, Workspace, step_config
from . import specialize
from . import train as cpu_train

#: The buffers that make up a model's training state, saved and moved between devices.
STATE = ("params", "moment1", "moment2", "opt_step", "rng")


class CpuBackend:
    device = "cpu"

    def __init__(self, spec, dtype, state=None):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.ws = Workspace(spec, self.dtype)
        self.fit_state = self.config = self.kernel = None
        self.extra = ()
        # The row permutation outlives a fit: a second fit on as many rows continues the
        # shuffle sequence, so fit(3 epochs) + fit(3 epochs) == fit(6 epochs).
        self.perm = np.zeros(0, np.int64)
        if state is not None:
            self.set_state(state)

    # -- state ---------------------------------------------------------------------------
    def get_state(self):
        """Host copies of the persistent buffers, by name (STATE)."""
        return {**{name: getattr(self.ws, name).copy() for name in STATE},
                "perm": self.perm.copy()}

    def set_state(self, state):
        """Buffers from get_state (or a file); "perm" is optional and of any length."""
        for name in STATE:
            getattr(self.ws, name)[:] = state[name]
        if "perm" in state:
            self.perm = np.array(state["perm"], dtype=np.int64)

    def get_params(self):
        return self.ws.params.copy()

    def set_params(self, params):
        self.ws.params[:] = params

    def _rows(self, batch):
        self.ws.ensure_rows(max(batch, config.MIN_WORKSPACE_ROWS))
        return self.ws.rows

    # -- inference, loss and gradients ---------------------------------------------------
    def forward_rows(self, X):
        """Output activations of every row of X, (n, n_outputs)."""
        rows = self._rows(1)
        ws = self.ws
        out = np.empty((X.shape[0], self.spec.n_outputs), self.dtype)
        cpu_train.forward_rows(out, ws.acts, ws.logits, ws.deltas, X, ws.params,
                               self.spec.table, rows)
        return out

    def loss_rows(self, X, T, loss, l2, weights=None, l2_per_sample=False):
        """The mean loss over the rows of X as one batch, plus the l2 term."""
        _unweighted(weights, l2_per_sample)
        rows = self._rows(1)
        ws = self.ws
        return float(cpu_train.loss_rows(ws.acts, ws.logits, ws.deltas, X, T, ws.params,
                                         self.spec.table, rows, loss, self.spec.n_weights,
                                         l2))

    def gradient_rows(self, X, T, loss, l2, weights=None, l2_per_sample=False):
        """The flat gradient of loss_rows on (X, T), a copy; the parameters do not change."""
        _unweighted(weights, l2_per_sample)
        rows = self._rows(X.shape[0])
        ws = self.ws
        cpu_train.gradient_rows(ws.grads, ws.acts, ws.logits, ws.deltas, X, T, ws.params,
                                self.spec.table, rows, loss, self.spec.n_weights, l2)
        return ws.grads.copy()

    # -- training ------------------------------------------------------------------------
    def begin_fit(self, X, T, batch_size, shuffle, epochs, loss, optimizer, l2,
                  validation=None, *, weights=None, schedule=None, l2_per_sample=False):
        """Set up one fit: the row permutation, the cursor and the per-epoch statistics
        (epoch_loss, epoch_grad_norm: sums the caller turns into means).

        A small network trains with the kernel generated for its architecture
        (cpu/specialize.py); any other with cpu_train.train_steps, looked up at each call
        (tests replace it)."""
        n_layers = len(self.spec.layers)
        rows = self._rows(batch_size)
        self.X, self.T, self.validation = X, T, validation
        self.loss, self.l2 = loss, l2
        self.epoch_loss = np.zeros(epochs)
        self.epoch_grad_norm = np.zeros((epochs, n_layers))
        if weights is not None or schedule is not None or l2_per_sample:
            raise NotImplementedError("sample weights, schedules and l2_per_sample are not "
                                      "in the CPU kernels yet")
        if self.perm.shape[0] != X.shape[0]:
            self.perm = np.arange(X.shape[0], dtype=np.int64)
        self.fit_state = FitState(self.perm, np.zeros(2, np.int64),
                                  self.epoch_loss, self.epoch_grad_norm, np.zeros(n_layers))
        self.config = step_config(self.spec, rows, loss, optimizer, l2, batch_size, shuffle)
        self.kernel, self.extra = specialize.for_fit(self.spec, loss, optimizer, batch_size,
                                                     self.dtype)

    def train_steps(self, n_steps):
        """Up to n_steps minibatch updates in one compiled call: (status, steps done)."""
        self.ws.save_backup()
        kernel = self.kernel or cpu_train.train_steps
        status, done = kernel(self.ws.train_state(), self.fit_state, self.X, self.T,
                              self.config, n_steps, *self.extra)
        return int(status), int(done)

    def cursor(self):
        """(epoch, batch) the current fit has reached, counted from its begin_fit."""
        return int(self.fit_state.cursor[0]), int(self.fit_state.cursor[1])

    def validation_loss(self):
        return self.loss_rows(*self.validation, self.loss, self.l2)

    def restore_if_overflowed(self):
        """After a failed step: if an update overflowed the weights themselves, go back to
        the copy taken when the last compiled call started; True if it did."""
        if np.isfinite(self.ws.params).all():
            return False
        self.ws.restore_backup()
        return True


def _unweighted(weights, l2_per_sample):
    if weights is not None or l2_per_sample:
        raise NotImplementedError("sample weights and l2_per_sample are not in these kernels "
                                  "yet")
