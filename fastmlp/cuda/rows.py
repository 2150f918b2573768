"""Host drivers of the device: chunked inference, the loss and the gradients on host rows
(the twins of cpu/steps.py's forward_rows, loss_rows and gradient_rows), and the pieces a
fit's launch loop (cuda/run.CudaRun) moves its data with: Uploader and the data budget.
"""
import numpy as np

from .. import config
from ..core.sample_weight import total_weight
from . import device
from .elementwise import l2_backward_kernel
from .network import network_backward, network_loss, network_output
from .optim import kernels as optimizer_kernels


class Uploader:
    """Copies host data into one device array asynchronously, through two pinned staging
    buffers used in turn; a buffer is refilled only after its previous copy has run."""

    def __init__(self, target):
        cuda = device.cuda_module()
        self.target = target
        self.stream = cuda.default_stream()  # the stream the kernels run on: copies queue in order
        self.staging = [cuda.pinned_array(target.shape, target.dtype) for _ in range(2)]
        self.events = [cuda.event() for _ in range(2)]
        self.used = [False, False]
        self.turn = 0

    def buffer(self):
        """The next staging buffer, once it is free to overwrite."""
        k = self.turn
        if self.used[k]:
            self.events[k].synchronize()
        return self.staging[k]

    def send(self):
        """Queue the copy of the buffer just filled into the device array."""
        k = self.turn
        self.target.copy_to_device(self.staging[k], stream=self.stream)
        self.events[k].record(self.stream)
        self.used[k] = True
        self.turn = 1 - k


def data_budget():
    """Device bytes the data of one fit may take (config.CUDA_DATA_BYTES)."""
    budget = config.CUDA_DATA_BYTES
    return device.free_bytes() // 2 if budget is None else budget


def data_rows_that_fit(n, row_bytes, batch_size):
    """Rows of training data to keep on the device at once: n, or whole batches of them."""
    budget = data_budget()
    if n * row_bytes <= budget:
        return n
    return max(1, budget // row_bytes // batch_size) * batch_size


# -- inference, loss and gradients on host data, dws.rows rows at a time ---------------
def _rows(dws, source, lo, hi, buffer):
    """Rows lo:hi of source on the device: a view if source is a device array, else copied
    into the start of a workspace buffer."""
    if hasattr(source, "copy_to_host"):
        return source[lo:hi]
    view = buffer[:hi - lo]
    view.copy_to_device(source[lo:hi])
    return view


def forward_rows(out, dws, x):
    """out (n, n_outputs) = network output for every row of x (host arrays)."""
    for lo in range(0, x.shape[0], dws.rows):
        hi = min(lo + dws.rows, x.shape[0])
        launches, outputs = network_output(dws, _rows(dws, x, lo, hi, dws.xbatch), hi - lo)
        for launch in launches:
            launch()
        outputs.copy_to_host(out[lo:hi])


def loss_rows(dws, x, targets, objective, weights=None):
    """Mean loss over every row of x as one batch (weighted by the float64 `weights` when
    given), plus the l2 term (a float); objective.l2_per_sample divides the l2 coefficient
    by the weight sum (the rows when unweighted), as cpu/train.loss_rows."""
    loss, l2, l2_per_sample = objective.loss, objective.l2, objective.l2_per_sample
    n = x.shape[0]
    total = 0.0
    for lo in range(0, n, dws.rows):
        hi = min(lo + dws.rows, n)
        for launch in network_loss(dws, _rows(dws, x, lo, hi, dws.xbatch),
                                   _rows(dws, targets, lo, hi, dws.tbatch), hi - lo, loss):
            launch()
        row_losses = dws.row_losses[:hi - lo].copy_to_host()
        if weights is None:
            total += float(np.sum(row_losses))
        else:  # a zero-weight row adds nothing, even if its loss is inf
            w = weights[lo:hi]
            total += float(np.dot(w[w != 0], row_losses[w != 0]))
    weight_sum = float(n) if weights is None else total_weight(weights)
    result = total / weight_sum
    if l2 != 0:
        coefficient = l2 / weight_sum if l2_per_sample else l2
        result += 0.5 * coefficient * _sum_squares(dws, dws.params[:dws.spec.n_weights])
    return result


def _sum_squares(dws, values):
    sum_squares = optimizer_kernels(config.CUDA_THREADS).sum_squares
    sum_squares[1, config.CUDA_THREADS](dws.scalar, values)
    return float(dws.scalar.copy_to_host()[0])


def gradient_rows(dws, x, targets, objective, weights=None):
    """dws.grads = gradient of loss_rows, l2 term included (unlike the training step's
    grads); x must fit the buffers in one batch (n <= rows)."""
    loss, l2, l2_per_sample = objective.loss, objective.l2, objective.l2_per_sample
    n = x.shape[0]
    weighting = None
    weight_sum = float(n)
    if weights is not None:
        weight_sum = total_weight(weights)
        weighting = (device.upload(weights), device.upload(np.arange(n, dtype=np.int64)), 0,
                     1.0 / weight_sum)
    for launch in network_backward(dws, _rows(dws, x, 0, n, dws.xbatch),
                                   _rows(dws, targets, 0, n, dws.tbatch), n, loss, l2,
                                   weighting):
        launch()
    coefficient = l2 / weight_sum if l2_per_sample else l2
    if coefficient != 0:  # as cpu/network.l2_backward
        threads = config.CUDA_THREADS
        n_weights = dws.spec.n_weights
        l2_backward_kernel[-(-n_weights // threads), threads](dws.grads, dws.params,
                                                              n_weights, coefficient)
