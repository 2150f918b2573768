"""The CUDA path equals the CPU path: loss, gradients, and the weights, losses and gradient
norms after several shuffled optimizer steps, for every activation/loss pair, through the
tiled kernels and through the fused kernel.

Both paths shuffle with the same splitmix64 permutation, so the same seed gives the same
batches; they differ only in the order of floating-point sums.
"""
import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.core import losses as L

TRAINABLE = sorted((loss, out) for loss, outs in L.VALID_OUTPUTS.items()
                   for out in outs if out != "step")
HIDDEN = [("tanh", "relu"), ("leaky_relu", "sigmoid"), ("relu", "identity"),
          ("sigmoid", "tanh")]
OPTIMIZERS = [lambda: fastmlp.SGD(lr=0.1), lambda: fastmlp.SGD(lr=0.05, momentum=0.9),
              lambda: fastmlp.SGD(lr=0.05, momentum=0.8, nesterov=True),
              lambda: fastmlp.Adam(lr=0.01), lambda: fastmlp.AdamW(lr=0.01, weight_decay=0.1)]
TOL = {"float64": dict(rtol=1e-12, atol=1e-13), "float32": dict(rtol=1e-5, atol=1e-6)}


def problem(index, loss, out, dtype, n=8, n_inputs=3, k=3):
    """Models on both devices with the same seed, and data; hidden activations, optimizer
    and l2 rotate with the pair's index so that every one of them is covered."""
    rng = np.random.default_rng(index)
    hidden = HIDDEN[index % len(HIDDEN)]
    layers = [(5, hidden[0]), (4, hidden[1]), (k, out)]
    kwargs = dict(loss=loss, dtype=dtype, seed=index, l2=0.01 * (index % 2))
    models = [fastmlp.MLP(n_inputs, layers, optimizer=OPTIMIZERS[index % len(OPTIMIZERS)](),
                          device=device, **kwargs) for device in ("cpu", "cuda")]
    X = rng.standard_normal((n, n_inputs))
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = rng.random((n, k))
    else:
        y = rng.standard_normal((n, k))
    return models, X, y


def assert_same_weights(a, b, tol):
    for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(Wb, Wa, **tol)
        np.testing.assert_allclose(bb, ba, **tol)


def assert_same_training_gradients(cpu, gpu, tol):
    """The grads buffers after fit hold the last step's data gradient on both devices
    (the l2 term is added inside the update, not written into grads)."""
    for (dW, db), (cW, cb) in zip(gpu.spec.pairs(gpu.backend.dws.grads.copy_to_host()),
                                  cpu.spec.pairs(cpu.backend.ws.grads)):
        np.testing.assert_allclose(dW, cW, **tol)
        np.testing.assert_allclose(db, cb, **tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,loss,out", [(i, *pair) for i, pair in enumerate(TRAINABLE)])
def test_tiled_path_matches_cpu(monkeypatch, index, loss, out, dtype):
    monkeypatch.setattr(config, "CUDA_FUSED", False)
    (cpu, gpu), X, y = problem(index, loss, out, dtype)
    tol = TOL[dtype]
    np.testing.assert_allclose(gpu.loss(X, y), cpu.loss(X, y), **tol)
    np.testing.assert_allclose(gpu.forward(X), cpu.forward(X), **tol)
    for (dW, db), (cW, cb) in zip(gpu.gradients(X, y), cpu.gradients(X, y)):
        np.testing.assert_allclose(dW, cW, **tol)
        np.testing.assert_allclose(db, cb, **tol)
    # 2 shuffled epochs of batches of 5 and 3 rows: 4 steps.
    h_cpu = cpu.fit(X, y, epochs=2, batch_size=5, progress=False)
    h_gpu = gpu.fit(X, y, epochs=2, batch_size=5, progress=False)
    assert_same_weights(cpu, gpu, tol)
    np.testing.assert_allclose(h_gpu.loss, h_cpu.loss, **tol)
    np.testing.assert_allclose(h_gpu.grad_norms, h_cpu.grad_norms, **tol)
    assert_same_training_gradients(cpu, gpu, tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,loss,out", [(i, *pair) for i, pair in enumerate(TRAINABLE)])
def test_fused_path_matches_cpu(monkeypatch, index, loss, out, dtype):
    monkeypatch.setattr(config, "CUDA_FUSED", "auto")  # the test networks fit: fused
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", False)  # one launch per step (many
    # steps per launch: test_fused_multistep.py)
    (cpu, gpu), X, y = problem(index, loss, out, dtype)
    assert gpu.backend.dws.fused
    tol = TOL[dtype]
    h_cpu = cpu.fit(X, y, epochs=2, batch_size=5, progress=False)
    h_gpu = gpu.fit(X, y, epochs=2, batch_size=5, progress=False)
    assert_same_weights(cpu, gpu, tol)
    np.testing.assert_allclose(h_gpu.loss, h_cpu.loss, **tol)
    np.testing.assert_allclose(h_gpu.grad_norms, h_cpu.grad_norms, **tol)
    assert_same_training_gradients(cpu, gpu, tol)


def test_fused_and_tiled_paths_agree(monkeypatch):
    """The same model trained by either CUDA path, wider than a fused block of rows and than
    a GEMM tile, ends with the same weights (float64, only the sum order differs)."""
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((13, 6)), rng.integers(0, 4, 13)
    results = []
    for fused in (False, True):
        monkeypatch.setattr(config, "CUDA_FUSED", fused)
        model = fastmlp.MLP(6, [(7, "relu"), (4, "softmax")], optimizer=fastmlp.Adam(lr=0.05),
                            dtype="float64", seed=3, device="cuda")
        assert model.backend.dws.fused == fused
        history = model.fit(X, y, epochs=2, batch_size=6, progress=False)
        results.append((model.get_weights(), history.loss))
    (tiled, tiled_loss), (fused, fused_loss) = results
    np.testing.assert_allclose(fused_loss, tiled_loss, rtol=1e-12)
    for (Wt, bt), (Wf, bf) in zip(tiled, fused):
        np.testing.assert_allclose(Wf, Wt, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(bf, bt, rtol=1e-12, atol=1e-14)
