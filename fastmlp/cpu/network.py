"""Whole-network passes over the flat buffers, driven by the spec's integer layer table.

Views: layer l's weights are params[w_off : w_off + n_in*n_out] seen as (n_in, n_out); its
activations for a batch of m rows are acts[rows*width_off : ... + m*n_out] seen as
(m, n_out), where `rows` is the buffer's row capacity. view2d makes each such view inline,
never a copy.
"""
import numpy as np

from ..config import jit
from ..core.spec import ACTIVATION, B_OFFSET, N_IN, N_OUT, W_OFFSET, WIDTH_OFFSET
from ..core.activations import IDENTITY
from .dense import dense_backward, dense_forward
from .loss import loss_backward, loss_forward, weighted_loss_backward, weighted_loss_forward
from .views import view2d

#: The row_weights of unweighted rows: empty float64, the type of a weights array, so that
#: batch_loss and network_backward compile once for weighted and unweighted callers alike.
UNWEIGHTED = np.zeros(0)


@jit(inline="always")
def weight_view(buf, layers, l):
    n_in = layers[l, N_IN]
    n_out = layers[l, N_OUT]
    off = layers[l, W_OFFSET]
    return view2d(buf, off, n_in, n_out)


@jit(inline="always")
def bias_view(buf, layers, l):
    off = layers[l, B_OFFSET]
    return buf[off:off + layers[l, N_OUT]]


@jit(inline="always")
def rows_view(buf, layers, l, rows, m):
    """Layer l's (m, n_out) block of an activation or delta buffer with `rows` rows."""
    n_out = layers[l, N_OUT]
    off = rows * layers[l, WIDTH_OFFSET]
    return view2d(buf, off, m, n_out)


@jit(inline="always")
def network_forward(acts, logits, deltas, x, params, layers, rows):
    """Forward pass of x (m, n_inputs); returns the output activations.

    Each hidden layer's pre-activations go through its delta block, which backward
    overwrites later; the output layer's (the logits) are kept for the loss.
    """
    m = x.shape[0]
    last = layers.shape[0] - 1
    inp = x
    for l in range(last + 1):
        out = rows_view(acts, layers, l, rows, m)
        if l == last:
            z = view2d(logits, 0, m, layers[l, N_OUT])
        else:
            z = rows_view(deltas, layers, l, rows, m)
        dense_forward(out, z, inp, weight_view(params, layers, l), bias_view(params, layers, l),
                      layers[l, ACTIVATION])
        inp = out
    return inp


@jit(inline="always")
def network_backward(grads, deltas, acts, x, targets, params, layers, rows, scale, loss,
                     row_weights):
    """Backward pass after network_forward on the same x: fills grads with d(loss)/d(params).

    scale is 1/m_total: the batch loss is a mean over m_total rows. row_weights: the rows'
    sample weights (float64), scale then 1/sum(row_weights) and the loss a weighted mean; or
    an empty array for unweighted rows (UNWEIGHTED). Always an array, never None, so that
    this compiles once, not once per kind of caller.
    """
    m = x.shape[0]
    last = layers.shape[0] - 1
    dout = rows_view(deltas, layers, last, rows, m)
    outputs = rows_view(acts, layers, last, rows, m)
    if row_weights.shape[0] == 0:
        loss_backward(dout, outputs, targets, scale, loss, layers[last, ACTIVATION])
    else:
        weighted_loss_backward(dout, outputs, targets, row_weights, scale, loss,
                               layers[last, ACTIVATION])
    for l in range(last, -1, -1):
        if l > 0:
            inp = rows_view(acts, layers, l - 1, rows, m)
            dinp = rows_view(deltas, layers, l - 1, rows, m)
            inp_activation = layers[l - 1, ACTIVATION]
        else:
            inp = x
            dinp = dout  # unused: the input layer needs no delta
            inp_activation = IDENTITY
        dense_backward(dinp, weight_view(grads, layers, l), bias_view(grads, layers, l), dout,
                       inp, weight_view(params, layers, l), inp_activation, l > 0)
        dout = dinp


@jit
def l2_forward(params, n_weights, l2):
    """(l2/2) * sum of squared weights (biases are not regularised)."""
    if l2 == 0:
        return 0.0
    s = 0.0
    for i in range(n_weights):
        s += params[i] * params[i]
    return 0.5 * l2 * s


@jit
def l2_backward(grads, params, n_weights, l2):
    if l2 != 0:
        for i in range(n_weights):
            grads[i] += l2 * params[i]


@jit(inline="always")
def output_loss(out, logits, targets, loss, row_weights):
    """Sum over the rows of out (the network's outputs, logits its pre-activations) of the
    per-row loss, each times its weight in row_weights; an empty row_weights (UNWEIGHTED)
    weighs every row 1."""
    m, n_out = out.shape
    if row_weights.shape[0] == 0:
        return loss_forward(out, view2d(logits, 0, m, n_out), targets, loss)
    return weighted_loss_forward(out, view2d(logits, 0, m, n_out), targets, row_weights, loss)


@jit(inline="always")
def batch_loss(acts, logits, deltas, x, targets, params, layers, rows, loss, row_weights):
    """Sum over the rows of x of the per-row loss (no l2 term), each times its weight in
    row_weights; an empty row_weights (UNWEIGHTED) weighs every row 1."""
    out = network_forward(acts, logits, deltas, x, params, layers, rows)
    return output_loss(out, logits, targets, loss, row_weights)
