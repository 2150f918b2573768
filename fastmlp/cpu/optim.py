"""Optimizer kernels: fused in-place loops over the flat parameter buffer.

One pass per segment (each layer's weights, then all biases) adds the l2 term to the
gradient, accumulates the squared gradient (for History.grad_norms and the finiteness check)
and applies the update, so each parameter, gradient and moment is read and written once.
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
    """SGD on params[lo:hi]; returns the sum of squared (l2-augmented) gradients."""
    # Loops run over views from 0: LLVM does not vectorise numba's range(lo, hi).
    params, grads, velocity = params[lo:hi], grads[lo:hi], velocity[lo:hi]
    dt = params.dtype.type
    lr, momentum, l2 = dt(lr), dt(momentum), dt(l2)
    sq = 0.0  # float64: squares of finite float32 gradients above 1.8e19 would overflow
    if momentum == 0:
        for i in range(params.shape[0]):
            g = grads[i] + l2 * params[i]
            sq += np.float64(g) * g
            params[i] -= lr * g
    elif nesterov:
        # torch: buf = momentum*buf + g (buf = g on step 1, the same from a zero buffer);
        # then g = g + momentum*buf
        for i in range(params.shape[0]):
            g = grads[i] + l2 * params[i]
            sq += np.float64(g) * g
            b = momentum * velocity[i] + g
            velocity[i] = b
            params[i] -= lr * (g + momentum * b)
    else:
        for i in range(params.shape[0]):
            g = grads[i] + l2 * params[i]
            sq += np.float64(g) * g
            b = momentum * velocity[i] + g
            velocity[i] = b
            params[i] -= lr * b
    return sq


@jit
def adam_step(params, grads, moment1, moment2, lo, hi, lr, beta1, beta2, eps, weight_decay,
              step, l2):
    """Adam, or AdamW when weight_decay != 0, on params[lo:hi]; returns the sum of squared
    (l2-augmented) gradients. step is the 1-based count of this update."""
    params, grads = params[lo:hi], grads[lo:hi]
    moment1, moment2 = moment1[lo:hi], moment2[lo:hi]
    dt = params.dtype.type
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2_sqrt = dt(math.sqrt(1.0 - beta2 ** step))
    step_size = dt(lr / bias_correction1)
    decay = dt(1.0 - lr * weight_decay)
    one_minus_beta1, beta2_, one_minus_beta2 = dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2)
    eps, l2 = dt(eps), dt(l2)
    sq = 0.0  # float64: squares of finite float32 gradients above 1.8e19 would overflow
    for i in range(params.shape[0]):
        p = params[i]
        g = grads[i] + l2 * p
        sq += np.float64(g) * g
        m = moment1[i]
        m += one_minus_beta1 * (g - m)  # torch's exp_avg.lerp_(grad, 1 - beta1)
        v = beta2_ * moment2[i] + one_minus_beta2 * g * g
        moment1[i] = m
        moment2[i] = v
        if weight_decay != 0:
            p *= decay  # decoupled: decay first, then the Adam step, as torch.optim.AdamW
        params[i] = p - step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)
    return sq


@jit
def update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step, l2,
                   is_weights):
    if optimizer == SGD:
        return sgd_step(params, grads, moment1, lo, hi, hyper[LR], hyper[MOMENTUM],
                        hyper[NESTEROV] != 0, l2)
    decay = hyper[WEIGHT_DECAY] if optimizer == ADAMW and is_weights else 0.0
    return adam_step(params, grads, moment1, moment2, lo, hi, hyper[LR], hyper[BETA1],
                     hyper[BETA2], hyper[EPS], decay, step, l2)


@jit
def optimizer_step(params, grads, moment1, moment2, opt_step, grad_norms, layers, optimizer,
                   hyper, l2):
    """One update of the flat buffers: params -= update(grads + l2 * weights).

    Writes grad_norms[l] = ||dW_l + l2 W_l|| and returns False if any gradient (weights or
    biases) was NaN or infinite; opt_step[0] counts the updates made so far.
    """
    opt_step[0] += 1
    step = opt_step[0]
    finite = True
    n_layers = layers.shape[0]
    for l in range(n_layers):
        lo = layers[l, W_OFFSET]
        hi = lo + layers[l, N_IN] * layers[l, N_OUT]
        sq = update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step,
                            l2, True)
        grad_norms[l] = math.sqrt(sq)
        finite = finite and math.isfinite(sq)
    last = n_layers - 1
    biases_end = params.shape[0]
    n_weights = layers[last, W_OFFSET] + layers[last, N_IN] * layers[last, N_OUT]
    sq = update_segment(params, grads, moment1, moment2, n_weights, biases_end, optimizer,
                        hyper, step, 0.0, False)
    return finite and math.isfinite(sq)
