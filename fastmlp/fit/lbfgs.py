"""Full-batch L-BFGS training: scipy's L-BFGS-B over the flat parameter vector.

The parameters already live in one vector, so scipy's iterate is copied into the backend's
parameter buffer once per evaluation (the only copy), and the loss and gradient come from the
compiled kernels (backend.loss_rows and backend.gradient_rows over the whole set).
"""
import time

import numpy as np

from .history import History


def fit_lbfgs(backend, X, T, W, optimizer, loss, l2, l2_per_sample, epochs):
    """Minimise the full-batch loss from the current parameters; returns a History with one
    entry per L-BFGS iteration (at most min(optimizer.max_iter, epochs))."""
    from scipy.optimize import minimize

    n_layers = len(backend.spec.layers)
    history = History(grad_norms=np.zeros((0, n_layers)))
    iterations = min(optimizer.max_iter, epochs)
    if iterations == 0:
        return history
    spec = backend.spec
    losses, norms, seconds = [], [], []
    clock = [time.perf_counter()]

    last = {}

    def loss_and_gradient(p):
        backend.set_params(p)  # scipy's float64 iterate into the model's buffer
        value = backend.loss_rows(X, T, loss, l2, W, l2_per_sample)
        grad = backend.gradient_rows(X, T, loss, l2, W, l2_per_sample).astype(np.float64)
        last.update(p=p.copy(), value=value, grad=grad)
        return value, grad

    def iteration_end(p):
        if np.array_equal(p, last.get("p")):  # scipy evaluated this iterate last
            value, grad = last["value"], last["grad"]
        else:
            value, grad = loss_and_gradient(p)
        losses.append(value)
        norms.append([np.linalg.norm(grad[spec.weight_slice(l)]) for l in range(n_layers)])
        now = time.perf_counter()
        seconds.append(now - clock[0])
        clock[0] = now

    start = backend.get_params().astype(np.float64)
    result = minimize(loss_and_gradient, start, method="L-BFGS-B", jac=True,
                      callback=iteration_end,
                      # gtol alone, as scikit-learn's lbfgs solver: with ftol too it stops
                      # far earlier on flat stretches
                      options={"maxiter": iterations, "maxfun": optimizer.max_fun,
                               "gtol": optimizer.tol})
    backend.set_params(result.x)
    history.loss = np.array(losses)
    history.grad_norms = np.array(norms).reshape(-1, n_layers)
    history.seconds = np.array(seconds)
    history.lbfgs = result  # scipy's OptimizeResult: message, nit, nfev
    return history
