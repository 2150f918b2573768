"""Central-difference gradient checks in float64, and the analytic gradients vs reference.py."""
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import fastmlp
from fastmlp.core import losses as L
from tests import reference as ref

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]
PAIRS = [(loss, out) for loss, outs in L.VALID_OUTPUTS.items() for out in sorted(outs)]


def make_targets(rng, loss, out, m, k):
    if loss == "cross_entropy":
        return rng.integers(0, k, m)
    if loss == "binary_cross_entropy":
        return rng.random((m, k))
    return rng.standard_normal((m, k))


def random_model(rng, n_inputs, layers, loss, l2=0.0):
    model = fastmlp.MLP(n_inputs, layers, loss=loss, l2=l2, dtype="float64")
    # Random biases too, so no unit sits exactly at a relu/step kink.
    model.set_weights([(rng.standard_normal(W.shape) / np.sqrt(W.shape[0]),
                        0.3 * rng.standard_normal(b.shape)) for W, b in model.get_weights()])
    return model


@pytest.mark.parametrize("loss,out", PAIRS)
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_every_activation_loss_pair(loss, out, l2):
    # A seed of its own per pair, the same in every process (hash() of a str is salted per
    # process: with it, one run in many drew a step unit within eps of its kink).
    rng = np.random.default_rng(zlib.crc32(f"{loss}/{out}".encode()))
    layers = [(5, "tanh"), (3, "relu"), (4, out)]
    model = random_model(rng, 3, layers, loss, l2)
    X = rng.standard_normal((7, 3))
    y = make_targets(rng, loss, out, 7, 4)
    assert fastmlp.gradcheck(model, X, y) < 1e-6
    # and the analytic gradients equal the textbook recursion
    T = model.as_arrays(np.zeros((7, model.n_inputs)), y)[1]
    expect = ref.gradients(model.get_weights(), layers, X, T, model.loss_name, l2)
    for (dW, db), (eW, eb) in zip(model.gradients(X, y), expect):
        np.testing.assert_allclose(dW, eW, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(db, eb, rtol=1e-10, atol=1e-13)
    assert model.loss(X, y) == pytest.approx(
        ref.loss(model.get_weights(), layers, X, T, model.loss_name, l2), rel=1e-12)


KINKED = ("relu", "leaky_relu", "step")


def away_from_kinks(model, X, y, margin=1e-3):
    """Drop the rows that put a relu-like unit within `margin` of its kink: a central
    difference across a kink measures neither one-sided slope, so it checks nothing."""
    passes = ref.forward(model.get_weights(), model.layers, X)
    keep = np.ones(X.shape[0], bool)
    for (Z, _), (_, act) in zip(passes, model.layers):
        if act in KINKED:
            keep &= np.all(np.abs(Z) > margin, axis=1)
    return X[keep], np.asarray(y)[keep]


@st.composite
def architectures(draw):
    depth = draw(st.integers(1, 4))
    loss, out = draw(st.sampled_from(PAIRS))
    widths = [draw(st.sampled_from([1, 2, 3, 5, 7, 9, 13, 33, 41])) for _ in range(depth - 1)]
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth - 1)]
    n_out = draw(st.sampled_from([1, 2, 3, 5])) if out != "softmax" else \
        draw(st.sampled_from([2, 3, 5]))
    layers = list(zip(widths, hidden)) + [(n_out, out)]
    return dict(n_inputs=draw(st.sampled_from([1, 2, 3, 5, 9])), layers=layers, loss=loss,
                batch=draw(st.sampled_from([1, 2, 3, 17, 40])),
                l2=draw(st.sampled_from([0.0, 0.01])), seed=draw(st.integers(0, 2**31)))


# By default the same 60 architectures every run, so CI never flakes; set
# GRADCHECK_EXAMPLES=1000 for a fresh, larger random draw.
EXAMPLES = int(os.environ.get("GRADCHECK_EXAMPLES", "0"))


@settings(max_examples=EXAMPLES or 60, deadline=None, derandomize=not EXAMPLES,
          suppress_health_check=[HealthCheck.too_slow])
@given(architectures())
def test_random_architectures(arch):
    rng = np.random.default_rng(arch["seed"])
    model = random_model(rng, arch["n_inputs"], arch["layers"], arch["loss"], arch["l2"])
    X = rng.standard_normal((arch["batch"], arch["n_inputs"]))
    y = make_targets(rng, arch["loss"], arch["layers"][-1][1], arch["batch"],
                     arch["layers"][-1][0])
    X, y = away_from_kinks(model, X, y)
    assume(X.shape[0] > 0)
    # A layer whose gradient is tiny next to the loss (a leaky_relu output on its 0.01 slope,
    # saturated sigmoids) leaves central differences dominated by rounding at eps = 1e-5;
    # a larger step then measures it. A wrong gradient is off at every step size.
    error = min(fastmlp.gradcheck(model, X, y, eps=eps) for eps in (1e-5, 1e-4))
    if os.environ.get("GRADCHECK_LOG"):
        with open(os.environ["GRADCHECK_LOG"], "a") as log:
            log.write(f"{error!r}\n")
    assert error < 1e-6


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(0)
    model = random_model(rng, 3, [(4, "tanh"), (2, "sigmoid")], "binary_cross_entropy")
    X, y = rng.standard_normal((5, 3)), rng.random((5, 2))
    right = model.gradients

    def off_by_a_bit(X, y):
        grads = right(X, y)
        grads[0][0][1, 2] += 1e-3
        return grads

    monkeypatch.setattr(model, "gradients", off_by_a_bit)
    assert fastmlp.gradcheck(model, X, y) > 1e-4


def test_gradcheck_on_float32_model_uses_float64_differences():
    rng = np.random.default_rng(1)
    model = fastmlp.MLP(3, [(6, "tanh"), (3, "softmax")], dtype="float32", seed=1)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 3, 8)
    assert fastmlp.gradcheck(model, X, y) < 1e-4
