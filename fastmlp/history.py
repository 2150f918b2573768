"""History: what `fit` returns, one entry per completed epoch."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    #: mean training loss over the epoch's batches (per row, l2 term included)
    loss: list = field(default_factory=list)
    #: loss on validation_data after each epoch (empty without validation_data)
    val_loss: list = field(default_factory=list)
    #: (epochs, layers): mean over the epoch's batches of ||dW_l||, the vanishing-gradient view
    grad_norms: np.ndarray = None
    #: wall-clock seconds per epoch
    seconds: list = field(default_factory=list)
    #: True when Ctrl-C stopped training (the weights are those after the last whole batch)
    interrupted: bool = False

    @property
    def epochs(self):
        return len(self.loss)

    def __repr__(self):
        last = f", last loss {self.loss[-1]:.6g}" if self.loss else ""
        return f"History({self.epochs} epochs{last})"
