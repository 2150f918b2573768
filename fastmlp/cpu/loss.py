"""Loss kernels: loss_forward (summed over rows) and loss_backward (the output layer's delta)."""
from ..core.activations import SOFTMAX
from ..config import jit
from ..core.losses import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE
from ..core.scalars import (binary_cross_entropy_term, cross_entropy_term, is_canonical,
                            log_sum_exp, squared_error_term)
from .dense import activation_backward
from .views import readonly


@jit
def loss_forward(outputs, logits, targets, loss):
    """Sum over the rows of the per-row loss (the caller divides by the batch size).

    BCE and CE are computed from the logits so that they stay finite where the sigmoid or
    softmax output has rounded to exactly 0 or 1.
    """
    m, n = outputs.shape
    total = 0.0
    if loss == MSE:
        for i in range(m):
            for j in range(n):
                total += squared_error_term(outputs[i, j], targets[i, j])
    elif loss == BINARY_CROSS_ENTROPY:
        for i in range(m):
            for j in range(n):
                total += binary_cross_entropy_term(logits[i, j], targets[i, j])
    elif loss == CROSS_ENTROPY:
        # -sum_k t_k log softmax(z)_k = sum_k t_k (logsumexp(z) - z_k)
        for i in range(m):
            lse = log_sum_exp(logits, i)
            for j in range(n):
                total += cross_entropy_term(targets[i, j], lse, logits[i, j])
    else:  # a loss in losses.LOSSES without a branch here
        raise ValueError("cpu/loss.loss_forward: unknown loss code")
    return total


@jit
def loss_backward(dlogits, outputs, targets, scale, loss, activation):
    """dlogits = dL/dZ of the output layer for a loss averaged with weight `scale` (= 1/m)."""
    m, n = outputs.shape
    scale = dlogits.dtype.type(scale)
    # sigmoid+BCE, softmax+CE (targets are distributions, rows sum to 1) and identity+MSE:
    # dL/dZ = (A - T)/m exactly, with no division by a(1-a) that could underflow. For every
    # other pair this is dL/dA, which the chain rule below turns into dL/dZ;
    # losses.VALID_OUTPUTS leaves only MSE there, whose dL/dA is (A - T)/m too.
    for i in range(m):
        for j in range(n):
            dlogits[i, j] = (outputs[i, j] - targets[i, j]) * scale
    if is_canonical(loss, activation):
        return
    if activation == SOFTMAX:
        # Softmax Jacobian-vector product: dz_j = a_j (g_j - sum_k g_k a_k).
        for i in range(m):
            dot = dlogits.dtype.type(0)
            for j in range(n):
                dot += dlogits[i, j] * outputs[i, j]
            for j in range(n):
                dlogits[i, j] = outputs[i, j] * (dlogits[i, j] - dot)
    else:
        # typed read-only, as dense_backward passes its layer inputs: one compile of
        # activation_backward, not one per write flag
        activation_backward(dlogits, readonly(outputs), activation)


# -- sample weights: the batch loss is sum_i w_i l_i / sum_i w_i ----------------------------
@jit(inline="always")
def weighted_loss_forward(outputs, logits, targets, weights, loss):
    """Sum over the rows of weights[i] times row i's loss (loss_forward row by row; the
    caller divides by the weights' sum)."""
    total = 0.0
    for i in range(outputs.shape[0]):
        if weights[i] != 0:  # a zero-weight row adds nothing, even if its loss is inf
            total += weights[i] * loss_forward(outputs[i:i + 1], logits[i:i + 1],
                                               targets[i:i + 1], loss)
    return total


@jit(inline="always")
def weighted_loss_backward(dlogits, outputs, targets, weights, scale, loss, activation):
    """dlogits = dL/dZ of the output layer for the weighted mean with scale = 1/sum(w):
    loss_backward's delta with scale 1, row i then times weights[i] * scale (the delta is
    linear in its scale, so this is the same delta)."""
    loss_backward(dlogits, outputs, targets, 1.0, loss, activation)
    dt = dlogits.dtype.type
    for i in range(outputs.shape[0]):
        row_scale = dt(weights[i] * scale)
        for j in range(outputs.shape[1]):
            dlogits[i, j] *= row_scale
