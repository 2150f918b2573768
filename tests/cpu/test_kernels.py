"""Each CPU kernel against the plain numpy definitions in tests/reference.py."""
import numpy as np
import pytest

import fastmlp
from fastmlp.core import activations as A
from fastmlp.core import losses as L
from fastmlp.config import BLAS_MIN_WIDTH, jit
from fastmlp.core import scalars
from fastmlp.cpu import dense, loss as loss_kernels, optim, steps
from fastmlp.core.spec import NetworkSpec
from tests import reference as ref

# Derived from the registry: a new activation is tested here without editing this file.
ELEMENTWISE = sorted(set(A.ACTIVATIONS) - A.OUTPUT_ONLY)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_activation_forward(rng, name, dtype):
    z = (3 * rng.standard_normal((7, 5))).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    z[0, :] = -bias  # exactly at relu's and step's kink after the bias
    z[1, :] = np.array([40, -40, 100, -100, 0], dtype) - bias  # saturating values stay finite
    logits = z.copy()
    out = np.full_like(z, np.nan)
    dense.activation_forward(out, logits, bias, A.ACTIVATIONS[name])
    with np.errstate(over="ignore"):
        expect = ref.activation(z.astype(np.float64) + bias, name)
    np.testing.assert_allclose(out, expect, **TOL[dtype])
    np.testing.assert_array_equal(logits, z + bias)  # the epilogue keeps z + bias


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward_uses_output(rng, name, dtype):
    z = rng.standard_normal((6, 4)).astype(dtype)
    a = ref.activation(z, name).astype(dtype)
    delta = rng.standard_normal((6, 4)).astype(dtype)
    expect = delta * ref.activation_derivative(z.astype(np.float64), name)
    dense.activation_backward(delta, a, A.ACTIVATIONS[name])
    np.testing.assert_allclose(delta, expect, **TOL[dtype])


# cpu/dense.py writes core/scalars.py's formulas into its loops (a call there stops the
# vectoriser): the two must agree bit for bit.
@jit
def _scalar_forward(out, z, code):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = scalars.activate(z[i, j], code)


@jit
def _scalar_backward(delta, a, code):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            delta[i, j] = scalars.activation_grad(delta[i, j], a[i, j], code)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_dense_loops_are_the_scalar_formulas(rng, name, dtype):
    z = (3 * rng.standard_normal((9, 33))).astype(dtype)
    z[0, :4] = [0, -0.0, 100, -100]
    out, expect = np.empty_like(z), np.empty_like(z)
    dense.activation_forward(out, z.copy(), np.zeros(33, dtype), A.ACTIVATIONS[name])
    _scalar_forward(expect, z, A.ACTIVATIONS[name])
    np.testing.assert_array_equal(out, expect)
    delta = rng.standard_normal(z.shape).astype(dtype)
    got = delta.copy()
    dense.activation_backward(got, out, A.ACTIVATIONS[name])
    _scalar_backward(delta, out, A.ACTIVATIONS[name])
    np.testing.assert_array_equal(got, delta)


# Shapes on both sides of the BLAS threshold (hand-written loops, the one-output dot
# product, np.dot(out=)); the test below checks that both paths are taken.
SHAPES = [(1, 3, 2), (5, 7, 3), (6, 9, 1), (9, BLAS_MIN_WIDTH + 3, BLAS_MIN_WIDTH + 1),
          (33, 70, 40), (40, 2 * BLAS_MIN_WIDTH, 5), (1, 50, 40)]


def test_shapes_cover_both_paths():
    paths = {dense.use_blas(m, n_in, n_out) for m, n_in, n_out in SHAPES}
    assert paths == {True, False}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
@pytest.mark.parametrize("name", ["identity", "relu", "tanh"])
def test_dense_forward(rng, m, n_in, n_out, name, dtype):
    x = rng.standard_normal((m, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    out = np.full((m, n_out), np.nan, dtype)
    logits = np.full((m, n_out), np.nan, dtype)
    dense.dense_forward(out, logits, x, W, b, A.ACTIVATIONS[name])
    z = x.astype(np.float64) @ W + b
    tol = dict(rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * n_in)
    np.testing.assert_allclose(logits, z, **tol)
    np.testing.assert_allclose(out, ref.activation(z, name), **tol)


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
        optim.sgd_step(p, g, velocity, 0, 11, 0.1, momentum, nesterov, 0.05)
        expect = ref.sgd(expect, [g + 0.05 * expect[0]], state, 0.1, momentum, nesterov)
        np.testing.assert_allclose(p, expect[0], rtol=1e-13)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_step(rng, weight_decay):
    n = 9
    p = rng.standard_normal(n)
    m1, m2 = np.zeros(n), np.zeros(n)
    state = {}
    expect = [p.copy()]
    for step in range(1, 6):
        g = rng.standard_normal(n)
        optim.adam_step(p, g, m1, m2, 0, n, 0.01, 0.9, 0.999, 1e-8, weight_decay, step, 0.0)
        expect = ref.adam(expect, [g], state, 0.01, 0.9, 0.999, 1e-8, decay_mask=[True],
                          weight_decay=weight_decay)
        np.testing.assert_allclose(p, expect[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", ["adam", "momentum", "nesterov"])
def test_moments_decaying_to_subnormals_are_flushed_and_weights_keep_their_course(dtype,
                                                                                   rule):
    """A weight whose gradient stays 0 has its moments decay geometrically; once a moment
    would be subnormal it is stored as 0 (subnormal arithmetic takes a slow path). No weight
    moves because of it: a moment that small moves its weight by far less than half an
    ulp, flushed or not."""
    tiny = np.finfo(dtype).tiny
    n = 6
    p = np.linspace(-1, 1, n).astype(dtype)
    m1 = np.array([tiny * 4, -tiny * 4, 1e-3, 0, np.nan, tiny], dtype)
    m2 = np.array([tiny * 4, tiny * 2, 1e-6, 0, 1.0, tiny], dtype)
    g = np.zeros(n, dtype)
    start = p.copy()
    for step in range(1, 40):
        if rule == "adam":
            optim.adam_step(p, g, m1, m2, 0, n, 0.01, 0.9, 0.999, 1e-8, 0.0, step, 0.0)
        else:
            optim.sgd_step(p, g, m1, 0, n, 0.1, 0.9, rule == "nesterov", 0.0)
    a = np.abs(m1[np.isfinite(m1)])
    assert not ((a > 0) & (a < tiny)).any()       # no subnormal stored
    assert m1[0] == 0 and m1[1] == 0 and m1[2] != 0  # the normal one decays, still normal
    assert np.isnan(m1[4])                           # NaN is not flushed away
    if rule == "adam":
        assert not ((m2 > 0) & (m2 < tiny)).any()
    finite = np.isfinite(m1)
    finite[4] = False  # the NaN moment's weight is NaN: left out
    moved = [2]  # only the weight with a normal moment moves
    fixed = [i for i in range(n) if finite[i] and i not in moved]
    np.testing.assert_array_equal(p[fixed], start[fixed])


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_step_segments(rng, name):
    """l2 and AdamW's decay reach the weights only."""
    spec = NetworkSpec(3, [(4, "relu"), (2, "identity")])
    opt = fastmlp.SGD(lr=0.1) if name == "sgd" else fastmlp.AdamW(lr=0.1, weight_decay=0.5)
    p = rng.standard_normal(spec.n_params)
    g = rng.standard_normal(spec.n_params)
    g[spec.bias_slice(1)] = 0.0
    p0 = p.copy()
    optim.optimizer_step(p, g, np.zeros_like(p), np.zeros_like(p), np.zeros(1, np.int64),
                         spec.table, opt.code, opt.hyper(), 0.2)
    # a zero gradient on a bias leaves it exactly where it was: no l2, no decay there
    np.testing.assert_array_equal(p[spec.bias_slice(1)], p0[spec.bias_slice(1)])
    assert not np.array_equal(p[spec.weight_slice(1)], p0[spec.weight_slice(1)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_norms_and_finiteness(rng, dtype):
    spec = NetworkSpec(3, [(4, "relu"), (2, "identity")])
    p = rng.standard_normal(spec.n_params).astype(dtype)
    g = rng.standard_normal(spec.n_params).astype(dtype)
    norms = np.zeros(2)
    assert optim.gradient_norms(norms, g, p, spec.table, 0.2)
    for l in range(2):
        w = spec.weight_slice(l)
        expect = np.linalg.norm(g[w].astype(np.float64) + 0.2 * p[w])
        assert norms[l] == pytest.approx(expect, rel=1e-6 if dtype == np.float32 else 1e-12)
    big = g.copy()
    big[0] = 1e30 if dtype == np.float32 else 1e300  # finite, though its square is not
    assert optim.gradient_norms(norms, big, p, spec.table, 0.0) == (dtype == np.float32)
    for where in (spec.weight_slice(1).start, spec.bias_slice(0).start):
        bad = g.copy()
        bad[where] = np.nan
        assert not optim.gradient_norms(norms, bad, p, spec.table, 0.0)


def test_shuffle_is_a_seeded_permutation():
    perms = []
    for seed in (7, 7, 8):
        perm = np.arange(1000)
        state = np.array([seed], np.uint64)
        steps.shuffle(perm, state)
        perms.append(perm.copy())
        assert sorted(perm) == list(range(1000))
    assert np.array_equal(perms[0], perms[1]) and not np.array_equal(perms[0], perms[2])
    assert np.mean(perms[0] == np.arange(1000)) < 0.02  # actually moved


def test_gather_rows(rng):
    src = rng.standard_normal((10, 3))
    perm = rng.permutation(10)
    out = np.zeros((4, 3))
    steps.gather_rows(out, src, perm, 5, 4)
    np.testing.assert_array_equal(out, src[perm[5:9]])


def test_view2d_is_a_c_contiguous_view_that_keeps_its_buffer_alive():
    from numba import njit
    from fastmlp.cpu.views import view2d

    @njit
    def view(buf, off, rows, cols):
        return view2d(buf, off, rows, cols)

    buf = np.arange(20, dtype=np.float32)
    v = view(buf, 3, 2, 4)
    np.testing.assert_array_equal(v, buf[3:11].reshape(2, 4))
    assert v.flags.c_contiguous and v.base is not None
    v[1, 2] = -1.0
    assert buf[9] == -1.0  # a view, not a copy
    del buf
    np.testing.assert_array_equal(v[0], [3, 4, 5, 6])
