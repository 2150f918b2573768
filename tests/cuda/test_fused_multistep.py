"""Many fused training steps per launch (cuda/fused_steps.py) equal the CPU path: weights,
losses, gradient norms, the last step's gradient and the step count after shuffled epochs,
for every activation/loss pair and optimizer; launches cut anywhere (one step each, across
epoch ends, short of permutation slots); a non-finite step stops training as on the CPU;
per launch nothing is allocated and at most one permutation copy goes up.

The test networks are tiny and tests/cuda/conftest.py runs 4 threads per block, so every
strided loop of the kernel wraps around on a few rows.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from tests.runs import start as start_run
from fastmlp import config
from fastmlp.cuda import fused
from fastmlp.cuda.fused_steps import StepsRun
from fastmlp.core.spec import NetworkSpec
from tests.cuda.test_allocations import counted, traffic  # noqa: F401 (a fixture)
from tests.cuda.test_parity import (TOL, TRAINABLE, assert_same_training_gradients,
                                    assert_same_weights, problem)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def launches(monkeypatch):
    """Counts the multi-step launches (and the steps they ran) of every StepsRun."""
    counts = {"calls": 0, "launches": 0}
    real = StepsRun.launch_steps

    def counting(self, n_steps):
        before = self.launches
        real(self, n_steps)
        counts["calls"] += 1
        counts["launches"] += self.launches - before

    monkeypatch.setattr(StepsRun, "launch_steps", counting)
    return counts


def begin_fit(model, X, T, batch_size, shuffle, epochs):
    """The CudaRun of a fit that has begun, as the fit loop begins one."""
    return start_run(model, X, T, batch_size, shuffle, epochs)


def fit_both(models, X, y, **kwargs):
    return [model.fit(X, y, progress=False, **kwargs) for model in models]


def assert_same_training(cpu, gpu, h_cpu, h_gpu, tol):
    assert_same_weights(cpu, gpu, tol)
    np.testing.assert_allclose(h_gpu.loss, h_cpu.loss, **tol)
    np.testing.assert_allclose(h_gpu.grad_norms, h_cpu.grad_norms, **tol)
    assert_same_training_gradients(cpu, gpu, tol)
    assert gpu.backend.dws.opt_step == int(cpu.backend.get_state()["opt_step"][0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,loss,out", [(i, *pair) for i, pair in enumerate(TRAINABLE)])
def test_many_steps_per_launch_match_cpu(monkeypatch, launches, index, loss, out, dtype):
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", True)
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS_PER_LAUNCH", 3)
    (cpu, gpu), X, y = problem(index, loss, out, dtype)
    # 3 shuffled epochs of batches of 5 and 3 rows: 6 steps in launches of 3, the second
    # starting mid-epoch.
    h_cpu, h_gpu = fit_both((cpu, gpu), X, y, epochs=3, batch_size=5)
    assert_same_training(cpu, gpu, h_cpu, h_gpu, TOL[dtype])
    assert launches["launches"] >= 2


@pytest.mark.parametrize("per_launch,perm_slots,shuffle", [
    (1, 4, True),       # one step per launch: the first starts every epoch
    (100, 4, True),     # the whole fit in one call's launch, over four epochs
    (100, 1, True),     # one permutation slot: a launch stops at each epoch's end
    (4, 2, True),       # launches start mid-epoch and cross epoch ends
    (100, 1, False),    # no shuffling: one permutation, never sent again
])
def test_launches_cut_anywhere_give_the_cpu_steps(monkeypatch, launches, per_launch,
                                                  perm_slots, shuffle):
    n, batch_size, epochs = 11, 4, 4  # 3 batches an epoch, the last of 3 rows
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", True)
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS_PER_LAUNCH", per_launch)
    monkeypatch.setattr(config, "CUDA_FUSED_PERM_BYTES", perm_slots * 8 * n)
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((n, 2)), rng.standard_normal(n)
    models = [fastmlp.MLP(2, [(3, "tanh"), (1, "identity")], optimizer=fastmlp.Adam(lr=0.05),
                          dtype="float64", seed=6, device=device) for device in ("cpu", "cuda")]
    h_cpu, h_gpu = fit_both(models, X, y, epochs=epochs, batch_size=batch_size,
                            shuffle=shuffle)
    assert_same_training(*models, h_cpu, h_gpu, TOL["float64"])
    steps = epochs * 3
    if per_launch == 100 and perm_slots == 1 and shuffle:
        assert launches["launches"] >= epochs  # at least one launch per epoch
    elif per_launch == 100:
        assert launches["launches"] == launches["calls"]  # one launch per call
    else:
        assert launches["launches"] >= -(-steps // per_launch)


def test_one_and_many_steps_per_launch_agree(monkeypatch):
    """The one-launch-per-step fused kernel (several blocks of 2 rows) and the multi-step
    kernel (one block) train the same model to the same weights, with momentum and l2."""
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    results = []
    for steps in (False, True):
        monkeypatch.setattr(config, "CUDA_FUSED_STEPS", steps)
        model = fastmlp.MLP(4, [(6, "leaky_relu"), (3, "softmax")], l2=0.01,
                            optimizer=fastmlp.SGD(lr=0.1, momentum=0.9), dtype="float64",
                            seed=2, device="cuda")
        history = model.fit(X, y, epochs=3, batch_size=4, progress=False)
        results.append((model.get_weights(), history.loss, history.grad_norms))
    (w1, loss1, norms1), (w2, loss2, norms2) = results
    np.testing.assert_allclose(loss2, loss1, rtol=1e-12)
    np.testing.assert_allclose(norms2, norms1, rtol=1e-12)
    for (W1, b1), (W2, b2) in zip(w1, w2):
        np.testing.assert_allclose(W2, W1, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b2, b1, rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nonfinite_step_stops_inside_a_launch_as_on_the_cpu(monkeypatch, launches):
    """The loss diverges within one launch: the launch stops at the first non-finite step,
    leaves the weights from before it, and fit reports the same epoch and batch."""
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", True)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1) * 1e3
    errors, models = [], []
    for device in ("cpu", "cuda"):
        model = fastmlp.MLP(3, [(6, "relu"), (1, "identity")], optimizer=fastmlp.SGD(lr=1e4),
                            dtype="float64", seed=0, device=device)
        with pytest.raises(FloatingPointError, match="NaN or infinite.*keeps the weights") \
                as error, np.errstate(over="ignore", invalid="ignore"):
            model.fit(X, y, epochs=2, batch_size=8, progress=False)
        errors.append(str(error.value))
        models.append(model)
    assert errors[1] == errors[0]
    assert_same_weights(models[0], models[1], TOL["float64"])
    assert launches["launches"] == 1  # stopped inside the one launch of all four steps
    assert models[1].backend.dws.opt_step == \
        int(models[0].backend.get_state()["opt_step"][0])


def test_a_launch_after_a_failed_step_changes_nothing(monkeypatch):
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", True)
    rng = np.random.default_rng(1)
    model = fastmlp.MLP(2, [(3, "relu"), (1, "identity")], dtype="float64", seed=0,
                        device="cuda")
    X, T = model.as_arrays(rng.standard_normal((6, 2)), rng.standard_normal(6))
    trainer = begin_fit(model, X, T, 3, True, 2)
    assert trainer.steps_run is not None
    dws = model.backend.dws
    before = dws.params.copy_to_host()
    dws.status.copy_to_device(np.array([1, 0]))  # as if an earlier step had been NaN
    status, ran = trainer.train_steps(4)
    assert (status, ran) == (1, 0)
    np.testing.assert_array_equal(dws.params.copy_to_host(), before)
    assert not dws.epoch_stats.copy_to_host().any()


def test_train_steps_allocate_nothing_and_send_one_copy_per_launch(monkeypatch, traffic):
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS_PER_LAUNCH", 4)
    rng = np.random.default_rng(2)
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "sigmoid")], seed=0, device="cuda")
    X, T = model.as_arrays(rng.standard_normal((6, 2)), rng.integers(0, 2, 6))
    trainer = begin_fit(model, X, T, 2, True, 4)
    assert trainer.steps_run is not None
    one = counted(traffic, lambda: trainer.train_steps(1))
    many = counted(traffic, lambda: trainer.train_steps(9))  # launches of 4, 4 and 1 steps
    for counts, n_launches in ((one, 1), (many, 3)):
        assert "device allocation" not in counts and "implicit copy" not in counts
        assert "pinned host allocation" not in counts
        assert counts["host to device"] == n_launches  # the epochs each launch shuffled
        assert counts["device to host"] == 2  # the status word and the epoch statistics
    quiet = begin_fit(model, X, T, 2, False, 4)
    assert "host to device" not in counted(traffic, lambda: quiet.train_steps(9))


def test_ctrl_c_keeps_the_launches_that_were_queued(monkeypatch):
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS_PER_LAUNCH", 2)
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    kwargs = dict(optimizer=fastmlp.SGD(lr=0.01), dtype="float64", seed=0)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], device="cuda", **kwargs)
    real = StepsRun._send_permutations
    sent = []

    def interrupted_at_the_third_launch(self, *args):
        if len(sent) == 2:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while the host prepares a launch
        sent.append(1)
        return real(self, *args)

    monkeypatch.setattr(StepsRun, "_send_permutations", interrupted_at_the_third_launch)
    with pytest.warns(RuntimeWarning, match="interrupted"):  # a warning, not a print
        history = model.fit(X, y, epochs=10, batch_size=4, progress=False)
    assert history.interrupted
    assert model.backend.dws.opt_step == 4  # two launches of two steps ran and count
    replay = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], **kwargs)
    replay.fit(X, y, epochs=2, batch_size=4, progress=False)
    assert_same_weights(replay, model, dict(rtol=1e-12))


def test_which_networks_run_many_steps_per_launch(monkeypatch):
    spec = NetworkSpec(1, [(8, "relu"), (8, "relu"), (1, "identity")])  # the x2 workload
    monkeypatch.setattr(config, "CUDA_FUSED_THREADS", 128)
    for itemsize in (4, 8):
        shape = fused.steps_shape(spec, 100, itemsize)
        assert shape is not None and shape.moments_shared
        assert shape.rows >= 100 and shape.params >= spec.n_params
        assert fused.steps_bytes(shape, itemsize) <= fused.SHARED_BYTES
        assert shape.n_threads == 128  # 800 outputs a layer: CUDA_FUSED_THREADS
    xor = NetworkSpec(2, [(2, "relu"), (1, "sigmoid")])
    assert fused.steps_shape(xor, 4, 4).n_threads == 32  # 9 parameters: one warp
    wide = NetworkSpec(64, [(64, "relu"), (64, "relu"), (10, "softmax")])
    assert fused.steps_shape(wide, 64, 4) is None  # 8906 parameters: too many for 48 KiB
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", "auto")
    assert fused.use_steps(spec, True, 100, 4, resident=False) is None
    assert fused.use_steps(spec, False, 100, 4, resident=True) is None
    assert fused.use_steps(wide, True, 64, 4, resident=True) is None
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", True)
    with pytest.raises(ValueError, match="do not fit one block"):
        fused.use_steps(wide, True, 64, 4, resident=True)
    with pytest.raises(ValueError, match="streamed"):
        fused.use_steps(spec, True, 100, 4, resident=False)
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", False)
    assert fused.use_steps(spec, True, 100, 4, resident=True) is None


def test_streamed_data_keeps_one_launch_per_step(monkeypatch):
    monkeypatch.setattr(config, "CUDA_DATA_BYTES", 9 * (3 + 1) * 8)
    rng = np.random.default_rng(3)
    model = fastmlp.MLP(3, [(4, "sigmoid"), (1, "identity")], dtype="float64", seed=2,
                        device="cuda")
    X, T = model.as_arrays(rng.standard_normal((14, 3)), rng.standard_normal(14))
    trainer = begin_fit(model, X, T, 4, True, 2)
    assert trainer.chunk_rows < 14 and trainer.steps_run is None


SHARED_CHECK = """
import re, sys
from numba import cuda, types
from numba.cuda import dispatcher
from fastmlp.cuda import fused, fused_steps
from fastmlp.core.spec import NetworkSpec

class H100:
    compute_capability = (9, 0)

dispatcher.get_current_device = H100  # device functions compile for "the current device"
try:
    cuda.compile_ptx(lambda: None, (), cc=(9, 0))
except Exception as exc:
    print(f"cannot compile CUDA here: {exc}", file=sys.stderr)
    sys.exit(3)
A = lambda dtype, ndim: types.Array(dtype, ndim, "C")
SHARED_ARRAY = r"\\.shared \\.align \\d+ \\.b8 \\w+\\[(\\d+)\\]"  # its size in bytes
i64, f64 = types.int64, types.float64
spec = NetworkSpec(1, [(8, "relu"), (8, "relu"), (1, "identity")])
for dtype, itemsize in ((types.float32, 4), (types.float64, 8)):
    for moments_shared in (True, False):
        shape = fused.steps_shape(spec, 100, itemsize)._replace(moments_shared=moments_shared)
        vec, mat = A(dtype, 1), A(dtype, 2)
        signature = (vec, vec, vec, vec, A(i64, 1), A(f64, 2), mat, mat, A(i64, 2), A(i64, 2),
                     A(f64, 1), i64, i64, i64, f64, i64, i64, types.boolean, i64, i64, i64,
                     i64)
        ptx, _ = cuda.compile_ptx(fused_steps.kernel(shape).py_func, signature, cc=(9, 0))
        used = sum(int(n) for n in re.findall(SHARED_ARRAY, ptx))
        print(itemsize, moments_shared, used, fused.steps_bytes(shape, itemsize))
"""


def test_kernel_compiles_for_sm_90_within_its_shared_memory_estimate():
    """Compiled without the simulator (which compiles nothing): the PTX's static shared
    arrays add up to at most fused.steps_bytes, the figure that decides what fits."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", SHARED_CHECK], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=600)
    if result.returncode == 3:
        message = f"{result.stderr.strip()[-300:]}; pip install '.[cuda]' installs NVVM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.split("\n") if line.strip()]
    assert len(rows) == 4, result.stdout
    for itemsize, moments_shared, used, estimate in rows:
        assert 0.9 * int(estimate) <= int(used) <= int(estimate), (itemsize, moments_shared)
