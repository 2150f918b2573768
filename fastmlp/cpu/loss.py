"""Loss kernels: loss_forward (summed over rows) and loss_backward (the output layer's delta)."""
import math

from ..activations import IDENTITY, SOFTMAX
from ..config import jit
from ..losses import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE
from .dense import activation_backward
from .mathfn import fast_exp, fast_log1p
from .views import readonly


@jit
def mse_forward(outputs, targets):
    """Sum over the rows of 1/2 sum_k (a_k - t_k)^2."""
    m, n = outputs.shape
    total = 0.0
    for i in range(m):
        for j in range(n):
            d = outputs[i, j] - targets[i, j]
            total += 0.5 * d * d
    return total


@jit
def binary_cross_entropy_forward(logits, targets):
    """Sum over the rows of -[t log s(z) + (1-t) log(1-s(z))], from the logits z."""
    m, n = logits.shape
    total = 0.0
    # -[t log s(z) + (1-t) log(1-s(z))] = max(z, 0) - z t + log(1 + exp(-|z|))
    for i in range(m):
        for j in range(n):
            z = logits[i, j]
            total += max(z, 0.0) - z * targets[i, j] + fast_log1p(fast_exp(-abs(z)))
    return total


@jit
def cross_entropy_forward(logits, targets):
    """Sum over the rows of -sum_k t_k log softmax(z)_k, from the logits z."""
    m, n = logits.shape
    total = 0.0
    # -sum_k t_k log softmax(z)_k = sum_k t_k (logsumexp(z) - z_k)
    for i in range(m):
        top = logits[i, 0]
        for j in range(1, n):
            top = max(top, logits[i, j])
        s = 0.0
        for j in range(n):
            s += math.exp(logits[i, j] - top)
        lse = top + math.log(s)
        for j in range(n):
            t = targets[i, j]
            if t != 0:
                total += t * (lse - logits[i, j])
    return total


# loss_forward and loss_backward are inlined into their callers: a caller whose loss code is
# a constant (cpu/train.py's kernel_for) keeps the one branch of its loss, and compiles
# neither the other losses' kernels nor the chain rule the canonical pairs skip.

@jit(inline="always")
def loss_forward(outputs, logits, targets, loss):
    """Sum over the rows of the per-row loss (the caller divides by the batch size).

    BCE and CE are computed from the logits so that they stay finite where the sigmoid or
    softmax output has rounded to exactly 0 or 1.
    """
    if loss == MSE:
        return mse_forward(outputs, targets)
    if loss == BINARY_CROSS_ENTROPY:
        return binary_cross_entropy_forward(logits, targets)
    if loss == CROSS_ENTROPY:
        return cross_entropy_forward(logits, targets)
    # a loss in losses.LOSSES without a branch here
    raise ValueError("cpu/loss.loss_forward: unknown loss code")


@jit
def output_error(dlogits, outputs, targets, scale):
    """dlogits = (A - T) * scale: the delta of the canonical pairs, and dL/dA for MSE."""
    m, n = outputs.shape
    scale = dlogits.dtype.type(scale)
    for i in range(m):
        for j in range(n):
            dlogits[i, j] = (outputs[i, j] - targets[i, j]) * scale


@jit
def through_activation(dlogits, outputs, activation):
    """dlogits = dL/dZ from dL/dA (in dlogits) and the outputs A = activation(Z)."""
    if activation == SOFTMAX:
        # Softmax Jacobian-vector product: dz_j = a_j (g_j - sum_k g_k a_k).
        m, n = outputs.shape
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


@jit(inline="always")
def loss_backward(dlogits, outputs, targets, scale, loss, activation):
    """dlogits = dL/dZ of the output layer for a loss averaged with weight `scale` (= 1/m).

    The pairs of losses.CANONICAL_PAIRS (sigmoid+BCE, softmax+CE with targets that are
    distributions, identity+MSE) have dL/dZ = (A - T)/m exactly, with no division by a(1-a)
    that could underflow. BCE and CE take only their canonical output (losses.VALID_OUTPUTS,
    checked where a model is built); MSE on any other output has dL/dA = (A - T)/m, which
    the chain rule through the activation turns into dL/dZ.
    """
    output_error(dlogits, outputs, targets, scale)
    if loss == MSE:
        if activation != IDENTITY:
            through_activation(dlogits, outputs, activation)
    elif loss != BINARY_CROSS_ENTROPY and loss != CROSS_ENTROPY:
        raise ValueError("cpu/loss.loss_backward: unknown loss code")


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
