"""Optimizer kernels: one fused in-place loop over the flat parameter buffer.

They follow torch.optim's update rules step for step (SGD with momentum/Nesterov, Adam,
AdamW with decay on the weights prefix only). `step` is the 1-based count after this update.
"""
import math

from ..config import jit

SGD, ADAM, ADAMW = 0, 1, 2
# Layout of the float64 hyper-parameter vector handed to the kernels.
LR, MOMENTUM, NESTEROV, BETA1, BETA2, EPS, WEIGHT_DECAY, N_HYPER = range(8)


@jit
def sgd_step(params, grads, velocity, lr, momentum, nesterov):
    n = params.shape[0]
    if momentum == 0:
        for i in range(n):
            params[i] -= lr * grads[i]
    elif nesterov:
        # torch: buf = momentum*buf + g (buf = g on step 1, the same from a zero buffer);
        # g = g + momentum*buf
        for i in range(n):
            g = grads[i]
            b = momentum * velocity[i] + g
            velocity[i] = b
            params[i] -= lr * (g + momentum * b)
    else:
        for i in range(n):
            b = momentum * velocity[i] + grads[i]
            velocity[i] = b
            params[i] -= lr * b


@jit
def adam_step(params, grads, moment1, moment2, lr, beta1, beta2, eps, weight_decay,
              n_weights, step):
    """Adam (weight_decay = 0) or AdamW (decoupled decay of params[:n_weights])."""
    if weight_decay != 0:
        decay = 1.0 - lr * weight_decay
        for i in range(n_weights):
            params[i] *= decay
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
    step_size = lr / bias_correction1
    for i in range(params.shape[0]):
        g = grads[i]
        m = moment1[i]
        m += (1.0 - beta1) * (g - m)  # torch's exp_avg.lerp_(grad, 1 - beta1)
        v = beta2 * moment2[i] + (1.0 - beta2) * g * g
        moment1[i] = m
        moment2[i] = v
        params[i] -= step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)


@jit
def optimizer_step(params, grads, moment1, moment2, opt_step, optimizer, hyper, n_weights):
    """One update of the flat buffers; opt_step[0] counts the updates made so far."""
    opt_step[0] += 1
    if optimizer == SGD:
        sgd_step(params, grads, moment1, hyper[LR], hyper[MOMENTUM], hyper[NESTEROV] != 0)
    else:
        adam_step(params, grads, moment1, moment2, hyper[LR], hyper[BETA1], hyper[BETA2],
                  hyper[EPS], hyper[WEIGHT_DECAY] if optimizer == ADAMW else 0.0,
                  n_weights, opt_step[0])
