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
from ..core.optimizers import (ADAM_CODE as ADAM, ADAMW_CODE as ADAMW, BETA1, BETA2, EPS, LR,
        MOMENTUM, NESTEROV, SGD_CODE as SGD, WEIGHT_DECAY)
from ..core.spec import N_IN, N_OUT, W_OFFSET
from ..core.mathfn import flush_subnormal


# Per-element update rules, inlined into the loops below and into the generated kernels of
# cpu/codegen.py, so each rule is written once. g is the gradient with the l2 term added.
#
# The moment buffers are stored with subnormal values flushed to zero (flush_subnormal). A
# weight whose gradient stays 0 (an input that is always 0, a dead relu unit) has its
# moments decay geometrically, and Adam's first moment goes subnormal after ~850 such steps
# (0.9 ** 850 ~ 1e-39 in float32): arithmetic on subnormals takes a slow path (docs/tuning.md
# has the update it slowed). The flush changes no weight: such a moment moves its weight by at
# most lr * 1e-38 / eps, far below half an ulp of any weight above 1e-20. The CUDA twin keeps
# subnormals: a GPU's arithmetic on them is not slower.

@jit(inline="always")
def momentum_update(p, g, b, lr, momentum):
    """SGD with momentum -> (p, b). torch: buf = momentum*buf + g (buf = g on step 1, the
    same from a zero buffer)."""
    b = flush_subnormal(momentum * b + g)
    return p - lr * b, b


@jit(inline="always")
def nesterov_update(p, g, b, lr, momentum):
    """Nesterov SGD -> (p, b): as momentum_update, then g + momentum*buf is the step."""
    b = flush_subnormal(momentum * b + g)
    return p - lr * (g + momentum * b), b


@jit(inline="always")
def adam_constants(lr, beta1, beta2, eps, weight_decay, step, dt):
    """The per-step scalars of adam_update, cast to the buffers' dtype dt.

    The second moment's bias correction comes as its reciprocal, so the update multiplies
    (torch divides): a division per element costs as much as the square root, and Adam over a
    few hundred thousand weights is bound by those two (docs/tuning.md). The result differs from torch's by at most an ulp of the denominator.
    """
    bias_correction1 = 1.0 - beta1 ** step
    inv_bias_correction2_sqrt = dt(1.0 / math.sqrt(1.0 - beta2 ** step))
    step_size = dt(lr / bias_correction1)
    decay = dt(1.0 - lr * weight_decay)
    return (step_size, dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2), inv_bias_correction2_sqrt,
            dt(eps), decay)


@jit(inline="always")
def adam_update(p, g, m, v, step_size, one_minus_beta1, beta2, one_minus_beta2,
                inv_bias_correction2_sqrt, eps, decay, decoupled):
    """Adam (AdamW when decoupled) -> (p, m, v), with adam_constants' scalars."""
    m = flush_subnormal(m + one_minus_beta1 * (g - m))  # torch's exp_avg.lerp_(grad, 1 - beta1)
    v = flush_subnormal(beta2 * v + one_minus_beta2 * g * g)
    if decoupled:
        p *= decay  # decoupled: decay first, then the Adam step, as torch.optim.AdamW
    return p - step_size * m / (math.sqrt(v) * inv_bias_correction2_sqrt + eps), m, v


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
        for i in range(params.shape[0]):
            params[i], velocity[i] = nesterov_update(params[i], grads[i] + l2 * params[i],
                                                     velocity[i], lr, momentum)
    else:
        for i in range(params.shape[0]):
            params[i], velocity[i] = momentum_update(params[i], grads[i] + l2 * params[i],
                                                     velocity[i], lr, momentum)


@jit
def adam_step(params, grads, moment1, moment2, lo, hi, lr, beta1, beta2, eps, weight_decay,
              step, l2):
    """Adam, or AdamW when weight_decay != 0, on params[lo:hi] with gradient
    grads + l2 * params. step is the 1-based count of this update."""
    params, grads = params[lo:hi], grads[lo:hi]
    moment1, moment2 = moment1[lo:hi], moment2[lo:hi]
    dt = params.dtype.type
    (step_size, one_minus_beta1, beta2_, one_minus_beta2, inv_bias_correction2_sqrt, eps_,
     decay) = adam_constants(lr, beta1, beta2, eps, weight_decay, step, dt)
    l2 = dt(l2)
    decoupled = weight_decay != 0
    for i in range(params.shape[0]):
        p = params[i]
        params[i], moment1[i], moment2[i] = adam_update(
            p, grads[i] + l2 * p, moment1[i], moment2[i], step_size, one_minus_beta1, beta2_,
            one_minus_beta2, inv_bias_correction2_sqrt, eps_, decay, decoupled)


@jit(inline="always")
def update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step, l2,
                   is_weights):
    if optimizer == SGD:
        sgd_step(params, grads, moment1, lo, hi, hyper[LR], hyper[MOMENTUM],
                 hyper[NESTEROV] != 0, l2)
    elif optimizer == ADAM or optimizer == ADAMW:
        decay = hyper[WEIGHT_DECAY] if optimizer == ADAMW and is_weights else 0.0
        adam_step(params, grads, moment1, moment2, lo, hi, hyper[LR], hyper[BETA1],
                  hyper[BETA2], hyper[EPS], decay, step, l2)
    else:  # a code in optimizers.CODES without a branch here must not train as something else
        raise ValueError("cpu/optim.update_segment: unknown optimizer code")


@jit(inline="always")
def optimizer_step(params, grads, moment1, moment2, opt_step, layers, optimizer, hyper, l2):
    """One update of the flat buffers: params -= update(grads + l2 * weights); the l2 term
    reaches each layer's weights, not the biases. opt_step[0] counts the updates made."""
    opt_step[0] += 1
    step = opt_step[0]
    n_layers = layers.shape[0]
    last = n_layers - 1
    n_weights = layers[last, W_OFFSET] + layers[last, N_IN] * layers[last, N_OUT]
    # One call site for the weights and the biases: update_segment is compiled and inlined
    # once (constant True/False arguments would type as two literals: two compiles).
    for l in range(n_layers + 1):
        is_weights = l < n_layers
        if is_weights:
            lo = layers[l, W_OFFSET]
            hi = lo + layers[l, N_IN] * layers[l, N_OUT]
            decay = l2
        else:
            lo, hi, decay = n_weights, params.shape[0], 0.0
        update_segment(params, grads, moment1, moment2, lo, hi, optimizer, hyper, step,
                       decay, is_weights)


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
