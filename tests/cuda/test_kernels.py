"""Each CUDA kernel against tests/reference.py and its CPU twin, with tiny launch shapes
(tests/cuda/conftest.py) so that ragged edges, several tiles and several depth steps run."""
import numpy as np
import pytest

from fastmlp import activations as A
from fastmlp import losses as L
from fastmlp.cpu import loss as cpu_loss, optim as cpu_optim
from fastmlp.cuda import dense, device, elementwise, loss as cuda_loss, optim
from tests import reference as ref

ELEMENTWISE = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "step"]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


def on_device(a):
    return device.upload(np.asarray(a))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_activation_forward(rng, name, dtype):
    z = (3 * rng.standard_normal((7, 5))).astype(dtype)
    z[0, 0] = 0.0  # exactly at relu's and step's kink
    z[1, :] = [40, -40, 100, -100, 0]  # saturating values stay finite
    out = device.zeros(z.shape, dtype)
    dense.activation_forward(out, on_device(z), A.ACTIVATIONS[name])
    with np.errstate(over="ignore"):
        expect = ref.activation(z.astype(np.float64), name)
    np.testing.assert_allclose(out.copy_to_host(), expect, **TOL[dtype])


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
    out = on_device(np.full((m, n_out), np.nan, dtype))
    dense.dense_forward(out, on_device(x), on_device(W), on_device(b), A.ACTIVATIONS[name])
    expect = ref.activation(x.astype(np.float64) @ W + b, name)
    np.testing.assert_allclose(out.copy_to_host(), expect, rtol=TOL[dtype]["rtol"] * 10,
                               atol=TOL[dtype]["atol"] * n_in)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
@pytest.mark.parametrize("prev,l2", [("relu", 0.0), ("sigmoid", 0.3)])
def test_dense_backward(rng, m, n_in, n_out, prev, l2, dtype):
    z_prev = rng.standard_normal((m, n_in))
    inp = ref.activation(z_prev, prev).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dout = rng.standard_normal((m, n_out)).astype(dtype)
    dW, db, dinp = (on_device(np.full(shape, np.nan, dtype))
                    for shape in ((n_in, n_out), n_out, (m, n_in)))
    tiles = -(-n_in // 4) * -(-n_out // 4)
    sums = on_device(np.full((tiles, 3), np.nan))
    dense.dense_backward(dinp, dW, db, on_device(dout), on_device(inp), on_device(W),
                         A.ACTIVATIONS[prev], True, l2, sums)
    tol = dict(rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * max(m, n_out) * 10)
    inp64, dout64, W64 = inp.astype(np.float64), dout.astype(np.float64), W.astype(np.float64)
    expect_dW = inp64.T @ dout64 + l2 * W64
    np.testing.assert_allclose(dW.copy_to_host(), expect_dW, **tol)
    np.testing.assert_allclose(db.copy_to_host(), dout64.sum(axis=0), **tol)
    np.testing.assert_allclose(dinp.copy_to_host(),
                               (dout64 @ W64.T) * ref.activation_derivative(z_prev, prev), **tol)
    # Per-tile sums of dW^2, W^2 and db^2 add up to the whole-array sums.
    totals = sums.copy_to_host().sum(axis=0)
    np.testing.assert_allclose(totals, [np.sum(expect_dW ** 2), np.sum(W64 ** 2),
                                        np.sum(dout64.sum(axis=0) ** 2)], rtol=tol["rtol"] * 10)
    # The input layer needs no delta: dinp is left alone.
    untouched = on_device(np.full((m, n_in), 7.0, dtype))
    dense.dense_backward(untouched, dW, db, on_device(dout), on_device(inp), on_device(W),
                         A.ACTIVATIONS[prev], False)
    assert np.all(untouched.copy_to_host() == 7.0)


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
    a = np.empty_like(z)
    from fastmlp.cpu.dense import activation_forward
    activation_forward(a, z, out_code)
    expect_total = cpu_loss.loss_forward(a, z, t, loss_code)
    expect_delta = np.empty_like(z)
    cpu_loss.loss_backward(expect_delta, a, t, 1.0 / m, loss_code, out_code)

    d_z, d_t = on_device(z), on_device(t)
    outputs, dz, rows = device.zeros((m, n), dtype), device.zeros((m, n), dtype), \
        device.zeros(m, np.float64)
    cuda_loss.loss_forward_backward[2, 4](dz, rows, outputs, d_z, d_t, 1.0 / m, loss_code,
                                          out_code)
    np.testing.assert_allclose(outputs.copy_to_host(), a, **TOL[dtype])
    np.testing.assert_allclose(rows.copy_to_host().sum(), expect_total, **TOL[dtype])
    np.testing.assert_allclose(dz.copy_to_host(), expect_delta, **TOL[dtype])
    # ... and the unfused kernels agree with the fused one.
    rows2, dz2 = device.zeros(m, np.float64), device.zeros((m, n), dtype)
    cuda_loss.loss_forward[2, 4](rows2, outputs, d_z, d_t, loss_code, out_code)
    cuda_loss.loss_backward[2, 4](dz2, outputs, d_t, 1.0 / m, loss_code, out_code)
    np.testing.assert_array_equal(rows2.copy_to_host(), rows.copy_to_host())
    np.testing.assert_array_equal(dz2.copy_to_host(), dz.copy_to_host())
    # The numpy definition, in float64.
    if dtype == np.float64:
        eye = [(np.eye(n), np.zeros(n))]
        np.testing.assert_allclose(rows.copy_to_host().sum() / m,
                                   ref.loss(eye, [(n, out)], z, t, loss), rtol=1e-12)
        np.testing.assert_allclose(dz.copy_to_host(), ref.output_delta(z, t, out, loss),
                                   rtol=1e-12, atol=1e-14)


def test_loss_from_logits_stays_finite():
    z = on_device(np.array([[200.0, -200.0]]))
    t = on_device(np.array([[0.0, 1.0]]))
    rows, outputs = device.zeros(1, np.float64), device.zeros((1, 2), np.float64)
    for out, loss in (("sigmoid", L.BINARY_CROSS_ENTROPY), ("softmax", L.CROSS_ENTROPY)):
        cuda_loss.loss_forward[1, 4](rows, outputs, z, t, loss, A.ACTIVATIONS[out])
        assert rows.copy_to_host()[0] == pytest.approx(400.0)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_step_matches_cpu(rng, momentum, nesterov):
    p = rng.standard_normal(11)
    velocity = np.zeros(11)
    d_p, d_velocity = on_device(p), on_device(velocity)
    for _ in range(3):
        g = rng.standard_normal(11)
        cpu_optim.sgd_step(p, g, velocity, 0.1, momentum, nesterov)
        optim.sgd_step(d_p, on_device(g), d_velocity, 0.1, momentum, nesterov)
        np.testing.assert_array_equal(d_p.copy_to_host(), p)
        np.testing.assert_array_equal(d_velocity.copy_to_host(), velocity)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_step_matches_cpu(rng, weight_decay, dtype):
    n, n_weights = 9, 6
    p = rng.standard_normal(n).astype(dtype)
    m1, m2 = np.zeros(n, dtype), np.zeros(n, dtype)
    d_p, d_m1, d_m2 = on_device(p), on_device(m1), on_device(m2)
    for step in range(1, 4):
        g = rng.standard_normal(n).astype(dtype)
        cpu_optim.adam_step(p, g, m1, m2, 0.01, 0.9, 0.999, 1e-8, weight_decay, n_weights, step)
        optim.adam_step(d_p, on_device(g), d_m1, d_m2, 0.01, 0.9, 0.999, 1e-8, weight_decay,
                        n_weights, step)
        np.testing.assert_allclose(d_p.copy_to_host(), p, **TOL[dtype])
        np.testing.assert_allclose(d_m2.copy_to_host(), m2, **TOL[dtype])


def test_gather_rows(rng):
    x, t = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    perm = rng.permutation(10)
    xb, tb = device.zeros((4, 3), np.float64), device.zeros((4, 2), np.float64)
    elementwise.gather_rows[5, 4](xb, tb, on_device(x), on_device(t), on_device(perm), 5)
    np.testing.assert_array_equal(xb.copy_to_host(), x[perm[5:9]])
    np.testing.assert_array_equal(tb.copy_to_host(), t[perm[5:9]])


@pytest.mark.parametrize("case", ["finite", "nonfinite loss", "nonfinite gradient",
                                  "earlier failure"])
def test_optimizer_step_takes_the_verdict_on_the_device(rng, case):
    n, m, epoch, lr, l2 = 10, 5, 1, 0.1, 0.2
    p, g = rng.standard_normal(n), rng.standard_normal(n)
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
    hyper = np.zeros(cpu_optim.N_HYPER)
    hyper[cpu_optim.LR] = lr
    d_p, d_status, stats = on_device(p), on_device(status), device.zeros((3, 3), np.float64)
    kernel = optim.kernels(4)[0]
    kernel[3, 4](d_p, on_device(g), device.zeros(n, np.float64), device.zeros(n, np.float64),
                 d_status, stats, on_device(row_losses), on_device(tile_sums),
                 on_device(layer_tiles), on_device(hyper), cpu_optim.SGD, 6, l2, m, epoch,
                 0.0, 1.0)
    expect_stats = np.zeros((3, 3))
    if case == "finite":
        expect_p, expect_status = p - lr * g, [0, 5]
        weight_sq = tile_sums[0, :, 1].sum() + tile_sums[1, 0, 1]
        expect_stats[epoch] = [row_losses.sum() + 0.5 * l2 * weight_sq * m,
                               np.sqrt(tile_sums[0, :, 0].sum()), np.sqrt(tile_sums[1, 0, 0])]
    else:
        expect_p = p
        expect_status = [{"nonfinite loss": optim.NONFINITE_LOSS}.get(
            case, optim.NONFINITE_GRADIENT), 4]
    np.testing.assert_allclose(d_p.copy_to_host(), expect_p, rtol=1e-15)
    np.testing.assert_array_equal(d_status.copy_to_host(), expect_status)
    np.testing.assert_allclose(stats.copy_to_host(), expect_stats, rtol=1e-14)
