"""Optimizer kernels: fused in-place loops over the flat parameter buffer.

One pass per segment (each layer's weights, then all biases) adds the l2 term to the
gradient and applies the update, so each parameter, gradient and moment is read and written
once.
The update rules follow torch.optim step for step (SGD with momentum/Nesterov, Adam, AdamW
with decay on the weights only); scalars are cast to the buffers' dtype first, as torch does.
"""
import math

import numpy as np

from ..config import jit
from ..spec import N_IN, N_OUT, W_OFFSET

SGD, ADAM, ADAMW = 0, 1, 2
# Layout of the float64 hyper-parameter vector handed to the kernels.
LR, MOMENTUM, NESTEROV, BETA1, BETA2, EPS, WEIGHT_DECAY, N_HYPER = range(8)


@jit
def sgd_step(params, grads, velocity, lo, hi, lr, momentum, nesterov, l2):
    """SGD on params[lo:hi] with gradient grads + l2 * params."""
    # Loops run over views from 0: LLVM does not vectorise numba's range(lo, hi).
    params, grads, velocity = params[lo:hi], grads[lo:hi], velocity[lo:hi]
    dt = params.dtype.type
    lr, momentum, l2 = dt(lr), dt(momentum), dt(l2)
    if momentum == 0:
        for i in range(params.shape[0]):
            g = grads[i] + l2 * params[i]
            params[i] -= lr * g
    elif nesterov:
        # torch: buf = momentum*buf + g (buf = g on step 1, the same from a zero buffer);
        # then g = g + momentum*buf
        for i in range(params.shape[0]):
            g = grads[i] + l2 * params[i]
            b = momentum * velocity[i] + g
            velocity[i] = b
            params[i] -= lr * (g + momentum * b)
    else:
        for i in range(params.shape[0]):
            g = grads[i] + l2 * params[i]
            b = momentum * velocity[i] + g
            velocity[i] = b
            params[i] -= lr * b


@jit
def adam_step(params, grads, moment1, moment2, lo, hi, lr, beta1, beta2, eps, weight_decay,
              step, l2):
    """Adam, or AdamW when weight_decay != 0, on params[lo:hi] with gradient
    grads + l2 * params. step is the 1-based count of this update."""
    params, grads = params[lo:hi], grads[lo:hi]
    moment1, moment2 = moment1[lo:hi], moment2[lo:hi]
    dt = params.dtype.type
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2_sqrt = dt(math.sqrt(1.0 - beta2 ** step))
    step_size = dt(lr / bias_correction1)
    decay = dt(1.0 - lr * weight_decay)
    one_minus_beta1, beta2_, one_minus_beta2 = dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2)
    eps, l2 = dt(eps), dt(l2)
    for i in range(params.shape[0]):
        p = params[i]
        g = grads[i] + l2 * p
        m = moment1[i]
        m += one_minus_beta1 * (g - m)  # torch's exp_avg.lerp_(grad, 1 - beta1)
        v = beta2_ * moment2[i] + one_minus_beta2 * g * g
        moment1[i] = m
        moment2[i] = v
        if weight_decay != 0:
            p *= decay  # decoupled: decay first, then the Adam step, as torch.optim.AdamW
        params[i] = p - step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)


@jit
def update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step, l2,
                   is_weights):
    if optimizer == SGD:
        sgd_step(params, grads, moment1, lo, hi, hyper[LR], hyper[MOMENTUM],
                 hyper[NESTEROV] != 0, l2)
    else:
        decay = hyper[WEIGHT_DECAY] if optimizer == ADAMW and is_weights else 0.0
        adam_step(params, grads, moment1, moment2, lo, hi, hyper[LR], hyper[BETA1],
                  hyper[BETA2], hyper[EPS], decay, step, l2)


@jit
def optimizer_step(params, grads, moment1, moment2, opt_step, layers, optimizer, hyper, l2):
    """One update of the flat buffers: params -= update(grads + l2 * weights); the l2 term
    reaches each layer's weights, not the biases. opt_step[0] counts the updates made."""
    opt_step[0] += 1
    step = opt_step[0]
    n_layers = layers.shape[0]
    for l in range(n_layers):
        lo = layers[l, W_OFFSET]
        hi = lo + layers[l, N_IN] * layers[l, N_OUT]
        update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step, l2,
                       True)
    last = n_layers - 1
    n_weights = layers[last, W_OFFSET] + layers[last, N_IN] * layers[last, N_OUT]
    update_segment(params, grads, moment1, moment2, n_weights, params.shape[0], optimizer,
                   hyper, step, 0.0, False)


@jit
def gradient_norms(norms, grads, params, layers, l2):
    """norms[l] = ||dW_l + l2 W_l||, the gradient each layer's weights are updated with;
    returns False if any gradient (weights or biases) is NaN or infinite.

    Run before the update, so that a bad gradient changes nothing. Squares add up in float64:
    in float32, a finite gradient above 1.8e19 would square to inf.
    """
    finite = True
    n_layers = layers.shape[0]
    for l in range(n_layers):
        lo = layers[l, W_OFFSET]
        hi = lo + layers[l, N_IN] * layers[l, N_OUT]
        g, w = grads[lo:hi], params[lo:hi]
        dt = g.dtype.type
        decay = dt(l2)
        sq = 0.0
        for i in range(g.shape[0]):
            v = g[i] + decay * w[i]
            sq += np.float64(v) * v
        norms[l] = math.sqrt(sq)
        finite = finite and math.isfinite(sq)
    last = n_layers - 1
    b = grads[layers[last, W_OFFSET] + layers[last, N_IN] * layers[last, N_OUT]:]
    sq = 0.0
    for i in range(b.shape[0]):
        sq += np.float64(b[i]) * b[i]
    return finite and math.isfinite(sq)
