"""Plain numpy versions of every kernel: the obvious, slow definitions the tests trust.

Written apart from fastmlp/core/scalars.py on purpose: an oracle that shared the kernels'
code would agree with their bugs. A new activation or loss needs its definition here too."""
import numpy as np

LEAKY_SLOPE = 0.01


def activation(z, name):
    if name == "identity":
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "step":
        return (z > 0).astype(z.dtype)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"tests/reference.py has no numpy definition of activation {name!r}")


def activation_derivative(z, name):
    """g'(z) elementwise (not defined for softmax)."""
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype)
    if name == "sigmoid":
        s = activation(z, "sigmoid")
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "step":
        return np.zeros_like(z)
    raise ValueError(f"tests/reference.py has no numpy derivative of activation {name!r}")


def forward(weights, layers, X):
    """[(Z_l, A_l)] for every layer; A_0 = X is not included."""
    out = []
    A = X
    for (W, b), (_, act) in zip(weights, layers):
        Z = A @ W + b
        A = activation(Z, act)
        out.append((Z, A))
    return out


def loss(weights, layers, X, T, loss_name, l2=0.0):
    Z, A = forward(weights, layers, X)[-1]
    m = X.shape[0]
    if loss_name == "mse":
        value = 0.5 * np.sum((A - T) ** 2) / m
    elif loss_name == "binary_cross_entropy":
        value = -np.sum(T * np.log(A) + (1 - T) * np.log(1 - A)) / m
    elif loss_name == "cross_entropy":
        value = -np.sum(T * np.log(A)) / m
    else:
        raise ValueError(loss_name)
    return value + 0.5 * l2 * sum(np.sum(W ** 2) for W, _ in weights)


def output_loss_gradient(A, T, loss_name):
    """dL/dA of the summed (not averaged) loss."""
    if loss_name == "mse":
        return A - T
    if loss_name == "binary_cross_entropy":
        return -(T / A) + (1 - T) / (1 - A)
    if loss_name == "cross_entropy":
        return -T / A
    raise ValueError(loss_name)


def output_delta(Z, T, activation_name, loss_name):
    """dL/dZ of the output layer for the row-averaged loss, by the general chain rule."""
    A = activation(Z, activation_name)
    dA = output_loss_gradient(A, T, loss_name) / Z.shape[0]
    if activation_name == "softmax":  # full Jacobian: dz_j = a_j (g_j - sum_k g_k a_k)
        return A * (dA - np.sum(dA * A, axis=1, keepdims=True))
    return dA * activation_derivative(Z, activation_name)


def gradients(weights, layers, X, T, loss_name, l2=0.0):
    """Backprop by the textbook delta recursion, with the general chain rule at the output."""
    passes = forward(weights, layers, X)
    dZ = output_delta(passes[-1][0], T, layers[-1][1], loss_name)
    grads = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        A_prev = X if l == 0 else passes[l - 1][1]
        W = weights[l][0]
        grads[l] = (A_prev.T @ dZ + l2 * W, dZ.sum(axis=0))
        if l > 0:
            dZ = (dZ @ W.T) * activation_derivative(passes[l - 1][0], layers[l - 1][1])
    return grads


def sgd(params, grads, state, lr, momentum=0.0, nesterov=False):
    new = []
    for i, (p, g) in enumerate(zip(params, grads)):
        if momentum:
            buf = g.copy() if i not in state else momentum * state[i] + g
            state[i] = buf
            g = g + momentum * buf if nesterov else buf
        new.append(p - lr * g)
    return new


def adam(params, grads, state, lr, beta1, beta2, eps, decay_mask=None, weight_decay=0.0):
    t = state.get("t", 0) + 1
    state["t"] = t
    new = []
    for i, (p, g) in enumerate(zip(params, grads)):
        if weight_decay and decay_mask[i]:
            p = p * (1 - lr * weight_decay)
        m = beta1 * state.get(("m", i), 0) + (1 - beta1) * g
        v = beta2 * state.get(("v", i), 0) + (1 - beta2) * g * g
        state[("m", i)], state[("v", i)] = m, v
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        new.append(p - lr * m_hat / (np.sqrt(v_hat) + eps))
    return new
