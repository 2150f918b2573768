"""Each CPU kernel against the plain numpy definitions in tests/reference.py."""
import numpy as np
import pytest

from fastmlp import activations as A
from fastmlp import losses as L
from fastmlp.config import BLAS_MIN_WIDTH
from fastmlp.cpu import dense, loss as loss_kernels, optim, train
from tests import reference as ref

ELEMENTWISE = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "step"]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_activation_forward(rng, name, dtype):
    z = (3 * rng.standard_normal((7, 5))).astype(dtype)
    z[0, 0] = 0.0  # exactly at relu's and step's kink
    z[1, :] = [40, -40, 100, -100, 0]  # saturating values stay finite
    out = np.empty_like(z)
    dense.activation_forward(out, z, A.ACTIVATIONS[name])
    with np.errstate(over="ignore"):
        expect = ref.activation(z.astype(np.float64), name)
    np.testing.assert_allclose(out, expect, **TOL[dtype])
    inplace = z.copy()
    dense.activation_forward(inplace, inplace, A.ACTIVATIONS[name])
    np.testing.assert_array_equal(inplace, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward_uses_output(rng, name, dtype):
    z = rng.standard_normal((6, 4)).astype(dtype)
    a = ref.activation(z, name).astype(dtype)
    delta = rng.standard_normal((6, 4)).astype(dtype)
    expect = delta * ref.activation_derivative(z.astype(np.float64), name)
    dense.activation_backward(delta, a, A.ACTIVATIONS[name])
    np.testing.assert_allclose(delta, expect, **TOL[dtype])


# Shapes on both sides of the BLAS threshold: hand-written loops and np.dot(out=).
SHAPES = [(1, 3, 2), (5, 7, 3), (9, BLAS_MIN_WIDTH + 3, BLAS_MIN_WIDTH + 1),
          (33, 70, 40), (8, 2 * BLAS_MIN_WIDTH, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
@pytest.mark.parametrize("name", ["identity", "relu", "tanh"])
def test_dense_forward(rng, m, n_in, n_out, name, dtype):
    x = rng.standard_normal((m, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    out = np.full((m, n_out), np.nan, dtype)
    dense.dense_forward(out, x, W, b, A.ACTIVATIONS[name])
    expect = ref.activation(x.astype(np.float64) @ W + b, name)
    np.testing.assert_allclose(out, expect, rtol=TOL[dtype]["rtol"] * 10,
                               atol=TOL[dtype]["atol"] * n_in)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
@pytest.mark.parametrize("prev", ["relu", "sigmoid", "identity"])
def test_dense_backward(rng, m, n_in, n_out, prev, dtype):
    z_prev = rng.standard_normal((m, n_in))
    inp = ref.activation(z_prev, prev).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dout = rng.standard_normal((m, n_out)).astype(dtype)
    dW = np.full((n_in, n_out), np.nan, dtype)
    db = np.full(n_out, np.nan, dtype)
    dinp = np.full((m, n_in), np.nan, dtype)
    dense.dense_backward(dinp, dW, db, dout, inp, W, A.ACTIVATIONS[prev], True)
    tol = dict(rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * max(m, n_out) * 10)
    inp64, dout64 = inp.astype(np.float64), dout.astype(np.float64)
    np.testing.assert_allclose(dW, inp64.T @ dout64, **tol)
    np.testing.assert_allclose(db, dout64.sum(axis=0), **tol)
    np.testing.assert_allclose(dinp, (dout64 @ W.T) * ref.activation_derivative(z_prev, prev),
                               **tol)
    # The input layer needs no delta: dinp is left alone.
    untouched = np.full((m, n_in), 7.0, dtype)
    dense.dense_backward(untouched, dW, db, dout, inp, W, A.ACTIVATIONS[prev], False)
    assert np.all(untouched == 7.0)


PAIRS = [(loss, out) for loss, outs in L.VALID_OUTPUTS.items() for out in sorted(outs)]


def _targets(rng, loss, shape):
    if loss == "cross_entropy":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    return rng.random(shape) if loss != "mse" else rng.standard_normal(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,out", PAIRS)
def test_loss_forward_and_backward(rng, loss, out, dtype):
    m, n = 6, 3
    z = (2 * rng.standard_normal((m, n))).astype(dtype)
    a = ref.activation(z.astype(np.float64), out).astype(dtype)
    t = _targets(rng, loss, (m, n)).astype(dtype)
    total = loss_kernels.loss_forward(a, z, t, L.LOSSES[loss])
    # reference.loss averages over rows; an identity "network" makes A = activation(X)
    eye = [(np.eye(n), np.zeros(n))]
    expect = ref.loss(eye, [(n, out)], z.astype(np.float64), t.astype(np.float64), loss)
    np.testing.assert_allclose(total / m, expect, **TOL[dtype])
    dz = np.full((m, n), np.nan, dtype)
    loss_kernels.loss_backward(dz, a, t, 1.0 / m, L.LOSSES[loss], A.ACTIVATIONS[out])
    expect = ref.output_delta(z.astype(np.float64), t.astype(np.float64), out, loss)
    np.testing.assert_allclose(dz, expect, **TOL[dtype])


def test_loss_from_logits_stays_finite():
    z = np.array([[200.0, -200.0]])
    t = np.array([[0.0, 1.0]])
    a = ref.activation(z, "sigmoid")  # rounds to exactly 1 and 0
    value = loss_kernels.loss_forward(a, z, t, L.BINARY_CROSS_ENTROPY)
    assert value == pytest.approx(400.0)
    a = ref.activation(z, "softmax")
    value = loss_kernels.loss_forward(a, z, t, L.CROSS_ENTROPY)
    assert value == pytest.approx(400.0)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_step(rng, momentum, nesterov):
    p = rng.standard_normal(11)
    velocity = np.zeros(11)
    state = {}
    expect = [p.copy()]
    for _ in range(4):
        g = rng.standard_normal(11)
        optim.sgd_step(p, g, velocity, 0.1, momentum, nesterov)
        expect = ref.sgd(expect, [g], state, 0.1, momentum, nesterov)
        np.testing.assert_allclose(p, expect[0], rtol=1e-13)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_step(rng, weight_decay):
    n, n_weights = 9, 6
    p = rng.standard_normal(n)
    m1, m2 = np.zeros(n), np.zeros(n)
    state = {}
    expect = [p[:n_weights].copy(), p[n_weights:].copy()]
    for step in range(1, 6):
        g = rng.standard_normal(n)
        optim.adam_step(p, g, m1, m2, 0.01, 0.9, 0.999, 1e-8, weight_decay, n_weights, step)
        expect = ref.adam(expect, [g[:n_weights], g[n_weights:]], state, 0.01, 0.9, 0.999,
                          1e-8, decay_mask=[True, False], weight_decay=weight_decay)
        np.testing.assert_allclose(p, np.concatenate(expect), rtol=1e-12)


def test_shuffle_is_a_seeded_permutation():
    perms = []
    for seed in (7, 7, 8):
        perm = np.arange(1000)
        state = np.array([seed], np.uint64)
        train.shuffle(perm, state)
        perms.append(perm.copy())
        assert sorted(perm) == list(range(1000))
    assert np.array_equal(perms[0], perms[1]) and not np.array_equal(perms[0], perms[2])
    assert np.mean(perms[0] == np.arange(1000)) < 0.02  # actually moved


def test_gather_rows(rng):
    src = rng.standard_normal((10, 3))
    perm = rng.permutation(10)
    out = np.zeros((4, 3))
    train.gather_rows(out, src, perm, 5, 4)
    np.testing.assert_array_equal(out, src[perm[5:9]])
