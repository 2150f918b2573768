"""Gradient checking by central finite differences."""
import math

import numpy as np


def gradcheck(model, X, y, eps=None):
    """Largest relative error between model.gradients(X, y) and central differences.

    The differences are taken in float64 on a float64 copy of the model, whatever the model's
    dtype, with step eps (default 1e-5, near the cube root of float64's epsilon, which
    balances truncation error against rounding). For each weight matrix and bias vector the
    error is ||analytic - numeric|| / (||analytic|| + ||numeric||) (0 when both vanish); the
    maximum over all of them is returned. Below ~1e-6 in float64 means the gradients are right; a
    float32 model's analytic gradients are only good to ~1e-4. A NaN or infinite gradient or
    difference gives inf: never a passing figure.
    """
    from .model import MLP

    eps = 1e-5 if eps is None else float(eps)
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number > 0; got {eps}")
    analytic = model.gradients(X, y)
    ref = MLP(model.n_inputs, model.layers, loss=model.loss_name, l2=model.l2,
              dtype="float64", device="cpu")
    ref.set_weights(model.get_weights())
    X, T = ref.as_arrays(X, y)
    backend, objective = ref.backend, ref.objective
    params = backend.get_params()  # perturbed one coordinate at a time, then set

    def loss():
        backend.set_params(params)
        return backend.loss_rows(X, T, objective)

    numeric = np.zeros_like(params)
    for i in range(params.shape[0]):
        saved = params[i]
        params[i] = saved + eps
        plus = loss()
        params[i] = saved - eps
        minus = loss()
        params[i] = saved
        numeric[i] = (plus - minus) / (2 * eps)
    backend.set_params(params)
    worst = 0.0
    for (dW, db), (nW, nb) in zip(analytic, ref.spec.pairs(numeric)):
        for a, b in ((dW, nW), (db, nb)):
            a = a.astype(np.float64)
            if not (np.isfinite(a).all() and np.isfinite(b).all()):
                return math.inf
            scale = np.linalg.norm(a) + np.linalg.norm(b)
            if scale > 0:
                worst = max(worst, float(np.linalg.norm(a - b) / scale))
    return worst

