"""Each CUDA kernel against tests/reference.py and its CPU twin, with tiny launch shapes
(tests/cuda/conftest.py) so that ragged edges, several tiles and several depth steps run.

The twins take the same arguments: each CPU kernel and its fastmlp.cuda function are called
with the same argument list, host arrays for the one and device arrays for the other."""
import numpy as np
import pytest

import fastmlp
from fastmlp.core import activations as A
from fastmlp.core import losses as L
from fastmlp.core import optimizers
from fastmlp.cpu import dense as cpu_dense, loss as cpu_loss, optim as cpu_optim
from fastmlp.cuda import dense, device, elementwise, loss as cuda_loss, optim
from fastmlp.core.spec import NetworkSpec
from tests import reference as ref

# Derived from the registry: a new activation is tested here without editing this file.
ELEMENTWISE = sorted(set(A.ACTIVATIONS) - A.OUTPUT_ONLY)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


def on_device(a):
    return device.upload(np.asarray(a))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_activation_forward(rng, name, dtype):
    z = (3 * rng.standard_normal((7, 5))).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    z[0, :] = -bias  # exactly at relu's and step's kink after the bias
    z[1, :] = np.array([40, -40, 100, -100, 0], dtype) - bias  # saturating values stay finite
    out, d_z = device.zeros(z.shape, dtype), on_device(z)
    dense.activation_forward(out, d_z, on_device(bias), A.ACTIVATIONS[name])
    with np.errstate(over="ignore"):
        expect = ref.activation(z.astype(np.float64) + bias, name)
    np.testing.assert_allclose(out.copy_to_host(), expect, **TOL[dtype])
    np.testing.assert_array_equal(d_z.copy_to_host(), z + bias)  # the epilogue keeps z + bias
    cpu_out, cpu_z = np.empty_like(z), z.copy()
    cpu_dense.activation_forward(cpu_out, cpu_z, bias, A.ACTIVATIONS[name])
    np.testing.assert_allclose(out.copy_to_host(), cpu_out, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward_uses_output(rng, name, dtype):
    z = rng.standard_normal((6, 4))
    a = ref.activation(z, name).astype(dtype)
    delta = rng.standard_normal((6, 4)).astype(dtype)
    expect = delta * ref.activation_derivative(z, name)
    d_delta = on_device(delta)
    dense.activation_backward(d_delta, on_device(a), A.ACTIVATIONS[name])
    np.testing.assert_allclose(d_delta.copy_to_host(), expect, **TOL[dtype])


# With 4x4 tiles and depth steps of 2: one tile, ragged tiles, several of each.
SHAPES = [(1, 3, 2), (5, 7, 3), (9, 5, 10)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
@pytest.mark.parametrize("name", ["identity", "tanh", "softmax"])
def test_dense_forward(rng, m, n_in, n_out, name, dtype):
    x = rng.standard_normal((m, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    code = A.ACTIVATIONS[name]
    out, z = (on_device(np.full((m, n_out), np.nan, dtype)) for _ in range(2))
    dense.dense_forward(out, z, on_device(x), on_device(W), on_device(b), code)
    z64 = x.astype(np.float64) @ W + b
    tol = dict(rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * n_in)
    np.testing.assert_allclose(z.copy_to_host(), z64, **tol)
    np.testing.assert_allclose(out.copy_to_host(), ref.activation(z64, name), **tol)
    cpu_out, cpu_z = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
    cpu_dense.dense_forward(cpu_out, cpu_z, x, W, b, code)
    np.testing.assert_allclose(out.copy_to_host(), cpu_out, **tol)
    np.testing.assert_allclose(z.copy_to_host(), cpu_z, **tol)
    # matmul_forward alone: no bias.
    product = on_device(np.full((m, n_out), np.nan, dtype))
    dense.matmul_forward(product, on_device(x), on_device(W))
    np.testing.assert_allclose(product.copy_to_host(), z64 - b, **tol)
    # The training plans' launch: bias and an elementwise activation in the GEMM epilogue.
    if name != "softmax":
        fused = on_device(np.full((m, n_out), np.nan, dtype))
        dense.dense_forward_launch(fused, on_device(x), on_device(W), on_device(b), code)()
        np.testing.assert_allclose(fused.copy_to_host(), ref.activation(z64, name), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
@pytest.mark.parametrize("prev", ["relu", "sigmoid"])
def test_dense_backward(rng, m, n_in, n_out, prev, dtype):
    z_prev = rng.standard_normal((m, n_in))
    inp = ref.activation(z_prev, prev).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dout = rng.standard_normal((m, n_out)).astype(dtype)
    dW, db, dinp = (on_device(np.full(shape, np.nan, dtype))
                    for shape in ((n_in, n_out), n_out, (m, n_in)))
    args = (on_device(dout), on_device(inp), on_device(W), A.ACTIVATIONS[prev])
    dense.dense_backward(dinp, dW, db, *args, True)
    tol = dict(rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * max(m, n_out) * 10)
    inp64, dout64, W64 = inp.astype(np.float64), dout.astype(np.float64), W.astype(np.float64)
    expect_dW, expect_db = inp64.T @ dout64, dout64.sum(axis=0)
    np.testing.assert_allclose(dW.copy_to_host(), expect_dW, **tol)
    np.testing.assert_allclose(db.copy_to_host(), expect_db, **tol)
    expect_dinp = (dout64 @ W64.T) * ref.activation_derivative(z_prev, prev)
    np.testing.assert_allclose(dinp.copy_to_host(), expect_dinp, **tol)
    cpu = [np.empty(shape, dtype) for shape in ((m, n_in), (n_in, n_out), n_out)]
    cpu_dense.dense_backward(*cpu, dout, inp, W, A.ACTIVATIONS[prev], True)
    for device_array, host in zip((dinp, dW, db), cpu):
        np.testing.assert_allclose(device_array.copy_to_host(), host, **tol)
    # The input layer needs no delta: dinp is left alone.
    untouched = on_device(np.full((m, n_in), 7.0, dtype))
    dense.dense_backward(untouched, dW, db, *args, False)
    assert np.all(untouched.copy_to_host() == 7.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
def test_dense_backward_tile_sums_include_l2(rng, m, n_in, n_out, dtype):
    """The training plans' launch: dW stays the data gradient, as on the CPU, while the
    per-tile sums add up to ||dW + l2 W||^2, ||W||^2 and ||db||^2."""
    l2 = 0.3
    inp = rng.random((m, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dout = rng.standard_normal((m, n_out)).astype(dtype)
    dW, db, dinp = (on_device(np.full(shape, np.nan, dtype))
                    for shape in ((n_in, n_out), n_out, (m, n_in)))
    sums = on_device(np.full((-(-n_in // 4) * -(-n_out // 4), 3), np.nan))
    dense.dense_backward_launch(dinp, dW, db, on_device(dout), on_device(inp), on_device(W),
                                A.SIGMOID, True, l2, sums)()
    tol = dict(rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * max(m, n_out) * 10)
    inp64, dout64, W64 = inp.astype(np.float64), dout.astype(np.float64), W.astype(np.float64)
    expect_dW = inp64.T @ dout64
    np.testing.assert_allclose(dW.copy_to_host(), expect_dW, **tol)
    totals = sums.copy_to_host().sum(axis=0)
    np.testing.assert_allclose(totals, [np.sum((expect_dW + l2 * W64) ** 2), np.sum(W64 ** 2),
                                        np.sum(dout64.sum(axis=0) ** 2)], rtol=tol["rtol"] * 10)


def test_dense_backward_sums_float32_squares_in_float64():
    """A finite float32 gradient above 1.8e19 squares to inf in float32: the tile sums
    must stay finite (float64), or training would stop on a finite gradient."""
    inp = np.full((3, 2), 1e10, np.float32)
    dout = np.full((3, 5), 1e10, np.float32)  # dW = 3e20 and db = 3e10 per element
    W = np.ones((2, 5), np.float32)
    dW, db, dinp = (device.zeros(shape, np.float32) for shape in ((2, 5), 5, (3, 2)))
    sums = device.zeros((2, 3), np.float64)
    dense.dense_backward_launch(dinp, dW, db, on_device(dout), on_device(inp), on_device(W),
                                A.IDENTITY, False, 0.0, sums)()
    assert np.isfinite(dW.copy_to_host()).all()
    totals = sums.copy_to_host().sum(axis=0)
    np.testing.assert_allclose(totals, [10 * 9e40, 10, 5 * 9e20], rtol=1e-6)


PAIRS = [(loss, out) for loss, outs in L.VALID_OUTPUTS.items() for out in sorted(outs)]


def _targets(rng, loss, shape):
    if loss == "cross_entropy":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    return rng.random(shape) if loss != "mse" else rng.standard_normal(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,out", PAIRS)
def test_loss_kernels_match_cpu(rng, loss, out, dtype):
    m, n = 6, 3
    z = (2 * rng.standard_normal((m, n))).astype(dtype)
    t = _targets(rng, loss, (m, n)).astype(dtype)
    loss_code, out_code = L.LOSSES[loss], A.ACTIVATIONS[out]
    no_bias = np.zeros(n, dtype)
    a = np.empty_like(z)
    cpu_dense.activation_forward(a, z.copy(), no_bias, out_code)
    expect_total = cpu_loss.loss_forward(a, z, t, loss_code)
    expect_delta = np.empty_like(z)
    cpu_loss.loss_backward(expect_delta, a, t, 1.0 / m, loss_code, out_code)

    # The twins, with the CPU calls' arguments.
    d_z, d_t = on_device(z), on_device(t)
    outputs = device.zeros((m, n), dtype)
    dense.activation_forward(outputs, on_device(z), on_device(no_bias), out_code)
    np.testing.assert_allclose(outputs.copy_to_host(), a, **TOL[dtype])
    total = cuda_loss.loss_forward(outputs, d_z, d_t, loss_code)
    np.testing.assert_allclose(total, expect_total, **TOL[dtype])
    dz = device.zeros((m, n), dtype)
    cuda_loss.loss_backward(dz, outputs, d_t, 1.0 / m, loss_code, out_code)
    np.testing.assert_allclose(dz.copy_to_host(), expect_delta, **TOL[dtype])
    # The training step's kernel does all three in one pass, with the same results.
    fused_outputs, fused_dz = device.zeros((m, n), dtype), device.zeros((m, n), dtype)
    rows = device.zeros(m, np.float64)
    cuda_loss.loss_forward_backward[2, 4](fused_dz, rows, fused_outputs, d_z, d_t, 1.0 / m,
                                          loss_code, out_code)
    np.testing.assert_array_equal(fused_outputs.copy_to_host(), outputs.copy_to_host())
    np.testing.assert_array_equal(fused_dz.copy_to_host(), dz.copy_to_host())
    np.testing.assert_allclose(rows.copy_to_host().sum(), total, rtol=1e-15)
    # The numpy definition, in float64.
    if dtype == np.float64:
        eye = [(np.eye(n), np.zeros(n))]
        np.testing.assert_allclose(total / m, ref.loss(eye, [(n, out)], z, t, loss),
                                   rtol=1e-12)
        np.testing.assert_allclose(dz.copy_to_host(), ref.output_delta(z, t, out, loss),
                                   rtol=1e-12, atol=1e-14)


def test_loss_from_logits_stays_finite():
    z = on_device(np.array([[200.0, -200.0]]))
    t = on_device(np.array([[0.0, 1.0]]))
    outputs = device.zeros((1, 2), np.float64)
    for out, loss in (("sigmoid", L.BINARY_CROSS_ENTROPY), ("softmax", L.CROSS_ENTROPY)):
        outputs.copy_to_device(ref.activation(z.copy_to_host(), out))  # exactly 0 and 1
        assert cuda_loss.loss_forward(outputs, z, t, loss) == pytest.approx(400.0)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_step_matches_cpu(rng, momentum, nesterov):
    p = rng.standard_normal(11)
    velocity = np.zeros(11)
    d_p, d_velocity = on_device(p), on_device(velocity)
    outside = p[[0, 1, 9, 10]].copy()
    for _ in range(3):
        g = rng.standard_normal(11)
        args = (2, 9, 0.1, momentum, nesterov, 0.05)  # the segment [2, 9), l2 = 0.05
        cpu_optim.sgd_step(p, g, velocity, *args)
        optim.sgd_step(d_p, on_device(g), d_velocity, *args)
        # (the CPU's fastmath may contract a * b + c into one rounding)
        np.testing.assert_allclose(d_p.copy_to_host(), p, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(d_velocity.copy_to_host(), velocity, rtol=1e-14,
                                   atol=1e-15)
    np.testing.assert_array_equal(p[[0, 1, 9, 10]], outside)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_step_matches_cpu(rng, weight_decay, dtype):
    n = 9
    p = rng.standard_normal(n).astype(dtype)
    m1, m2 = np.zeros(n, dtype), np.zeros(n, dtype)
    d_p, d_m1, d_m2 = on_device(p), on_device(m1), on_device(m2)
    for step in range(1, 4):
        g = rng.standard_normal(n).astype(dtype)
        args = (1, 7, 0.01, 0.9, 0.999, 1e-8, weight_decay, step, 0.05)
        cpu_optim.adam_step(p, g, m1, m2, *args)
        optim.adam_step(d_p, on_device(g), d_m1, d_m2, *args)
        np.testing.assert_allclose(d_p.copy_to_host(), p, **TOL[dtype])
        np.testing.assert_allclose(d_m1.copy_to_host(), m1, **TOL[dtype])
        np.testing.assert_allclose(d_m2.copy_to_host(), m2, **TOL[dtype])


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adam", "adamw"])
def test_optimizer_step_matches_cpu(rng, name):
    """l2 and AdamW's decay reach the weights only, on both devices."""
    spec = NetworkSpec(3, [(4, "relu"), (2, "identity")])
    opt = {"sgd": lambda: fastmlp.SGD(lr=0.1),
           "nesterov": lambda: fastmlp.SGD(lr=0.1, momentum=0.9, nesterov=True),
           "adam": lambda: fastmlp.Adam(lr=0.1),
           "adamw": lambda: fastmlp.AdamW(lr=0.1, weight_decay=0.5)}[name]()
    n = spec.n_params
    p = rng.standard_normal(n)
    m1, m2, opt_step = np.zeros(n), np.zeros(n), np.zeros(1, np.int64)
    d_p, d_m1, d_m2, d_opt_step = on_device(p), on_device(m1), on_device(m2), opt_step.copy()
    for _ in range(2):
        g = rng.standard_normal(n)
        args = (spec.table, opt.code, opt.hyper(), 0.2)
        cpu_optim.optimizer_step(p, g, m1, m2, opt_step, *args)
        optim.optimizer_step(d_p, on_device(g), d_m1, d_m2, d_opt_step, *args)
        for device_array, host in ((d_p, p), (d_m1, m1), (d_m2, m2)):
            np.testing.assert_allclose(device_array.copy_to_host(), host, rtol=1e-14,
                                       atol=1e-15)
        np.testing.assert_array_equal(d_opt_step, opt_step)
    # A zero gradient leaves a bias exactly where it was: no l2 and no decay there.
    g = np.zeros(n)
    before = d_p.copy_to_host()
    optim.optimizer_step(d_p, on_device(g), on_device(np.zeros(n)), on_device(np.zeros(n)),
                         np.zeros(1, np.int64), spec.table, opt.code, opt.hyper(), 0.2)
    after = d_p.copy_to_host()
    np.testing.assert_array_equal(after[spec.n_weights:], before[spec.n_weights:])
    assert not np.array_equal(after[spec.weight_slice(1)], before[spec.weight_slice(1)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_norms_match_cpu(rng, dtype):
    spec = NetworkSpec(3, [(4, "relu"), (2, "identity")])
    p = rng.standard_normal(spec.n_params).astype(dtype)
    g = rng.standard_normal(spec.n_params).astype(dtype)
    norms, d_norms, d_p = np.zeros(2), device.zeros(2, np.float64), on_device(p)
    assert cpu_optim.gradient_norms(norms, g, p, spec.table, 0.2)
    assert optim.gradient_norms(d_norms, on_device(g), d_p, spec.table, 0.2)
    np.testing.assert_allclose(d_norms.copy_to_host(), norms,
                               rtol=1e-6 if dtype == np.float32 else 1e-14)
    big = g.copy()
    big[0] = 1e30 if dtype == np.float32 else 1e300  # finite, though its square is not
    finite = dtype == np.float32  # squares add up in float64 on both devices
    assert cpu_optim.gradient_norms(norms, big, p, spec.table, 0.0) == finite
    assert optim.gradient_norms(d_norms, on_device(big), d_p, spec.table, 0.0) == finite
    if finite:
        np.testing.assert_allclose(d_norms.copy_to_host(), norms, rtol=1e-6)
    for where in (spec.weight_slice(1).start, spec.bias_slice(0).start):
        bad = g.copy()
        bad[where] = np.nan
        assert not cpu_optim.gradient_norms(norms, bad, p, spec.table, 0.0)
        assert not optim.gradient_norms(d_norms, on_device(bad), d_p, spec.table, 0.0)


def test_gather_rows(rng):
    x, t = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    perm = rng.permutation(10)
    xb, tb = device.zeros((4, 3), np.float64), device.zeros((4, 2), np.float64)
    elementwise.gather_rows[5, 4](xb, tb, on_device(x), on_device(t), on_device(perm), 5)
    np.testing.assert_array_equal(xb.copy_to_host(), x[perm[5:9]])
    np.testing.assert_array_equal(tb.copy_to_host(), t[perm[5:9]])


# The simulator computes with numpy scalars, which warn as a loss overflows float32.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("case", ["finite", "nonfinite loss", "nonfinite gradient",
                                  "earlier failure", "float32 loss overflow",
                                  "float32 squares overflow"])
def test_optimizer_step_takes_the_verdict_on_the_device(rng, case):
    n, n_weights, m, epoch, lr, l2 = 10, 6, 5, 1, 0.1, 0.2
    dtype = np.float32 if case.startswith("float32") else np.float64
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    row_losses = rng.random(m)
    tile_sums = rng.random((2, 3, 3))  # 2 layers; layer 0 has 3 dW tiles, layer 1 has 1
    layer_tiles = np.array([3, 1])
    status = np.array([0, 4])
    if case == "nonfinite loss":
        row_losses[2] = np.inf
    elif case == "nonfinite gradient":
        tile_sums[1, 0, optim.BIAS_SQ] = np.nan
    elif case == "earlier failure":
        status[0] = optim.NONFINITE_GRADIENT
    elif case == "float32 loss overflow":
        row_losses[2] = 1e39 * m  # finite in float64, not in the model's precision
    else:  # float32 squares overflow: the sums are float64, so this step goes ahead
        tile_sums[0, 1, optim.GRAD_SQ] = 1e40
    hyper = np.zeros(optimizers.N_HYPER)
    hyper[optimizers.LR] = lr
    d_p, d_status, stats = on_device(p), on_device(status), device.zeros((3, 3), np.float64)
    kernel = optim.kernels(4).optimizer_step
    kernel[3, 4](d_p, on_device(g), device.zeros(n, dtype), device.zeros(n, dtype),
                 d_status, stats, on_device(row_losses), on_device(tile_sums),
                 on_device(layer_tiles), on_device(hyper), optimizers.SGD_CODE, n_weights, m, l2,
                 epoch, lr, float(m), 0.0, 1.0)
    expect_stats = np.zeros((3, 3))
    if case in ("finite", "float32 squares overflow"):
        # the weights' gradient gets the l2 term, the biases' does not
        decay = np.where(np.arange(n) < n_weights, dtype(l2), 0).astype(dtype)
        expect_p, expect_status = p - lr * (g + decay * p), [0, 5]
        weight_sq = tile_sums[0, :, 1].sum() + tile_sums[1, 0, 1]
        expect_stats[epoch] = [row_losses.sum() + 0.5 * l2 * weight_sq * m,
                               np.sqrt(tile_sums[0, :, 0].sum()), np.sqrt(tile_sums[1, 0, 0])]
    else:
        expect_p = p
        expect_status = [optim.NONFINITE_GRADIENT if case.endswith(("gradient", "failure"))
                         else optim.NONFINITE_LOSS, 4]
    np.testing.assert_allclose(d_p.copy_to_host(), expect_p,
                               rtol=1e-6 if dtype == np.float32 else 1e-15)
    np.testing.assert_array_equal(d_status.copy_to_host(), expect_status)
    np.testing.assert_allclose(stats.copy_to_host(), expect_stats, rtol=1e-14)
