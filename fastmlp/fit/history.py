"""History: what `fit` returns, one entry per completed epoch.

The per-epoch figures are float64 numpy arrays: a tiny network can run millions of one-batch
epochs in a call, and a Python list of them would cost more than the training.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    #: mean training loss over the epoch's batches (per row, l2 term included)
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: loss on validation_data after each epoch (empty without validation_data)
    val_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: (epochs, layers): mean over the epoch's batches of ||dW_l||, the vanishing-gradient view
    grad_norms: np.ndarray = None
    #: wall-clock seconds per epoch (training only: compile_seconds is not in them)
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: seconds spent before the first step compiling the kernels, or loading them from
    #: numba's disk cache: a first run's cost, kept out of `seconds`
    compile_seconds: float = 0.0
    #: True when Ctrl-C stopped training (the weights are those after the last whole batch)
    interrupted: bool = False
    #: the learning rate of each epoch's last step (schedules change it)
    lr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: accuracy on validation_data after each epoch, for classifiers (empty otherwise)
    val_accuracy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: with early stopping: the 0-based epoch of the best monitored loss (None without)
    best_epoch: int = None
    #: True when early stopping ended training before `epochs`
    stopped_early: bool = False

    #: epochs per entry of the per-epoch arrays: 1, unless a very long fit merged neighbours
    #: to bound memory (epochlog.py)
    epoch_stride: int = 1
    #: epochs completed (None: one per entry of loss)
    completed: int = None

    @property
    def epochs(self):
        return len(self.loss) if self.completed is None else self.completed

    def plot(self, path=None, ax=None):
        """Loss, accuracy, learning rate and per-layer gradient norms per epoch (matplotlib);
        see fastmlp.fit.plot.plot_history. Returns the Figure."""
        from .plot import plot_history
        return plot_history(self, path=path, ax=ax)

    def __repr__(self):
        last = f", last loss {self.loss[-1]:.6g}" if len(self.loss) else ""
        return f"History({self.epochs} epochs{last})"
