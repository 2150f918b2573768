"""Sample weights, l2_per_sample and schedules on the device equal the CPU path: the loss
and gradients on host data, and whole shuffled fits (weights, losses, gradient norms, the
rate of each epoch, the schedule's counters), resident and streamed, in the simulator with
tiny launch shapes."""
import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.core import losses as L, schedules
from fastmlp.core.status import OK
from fastmlp.fit.plan import Objective
from tests.runs import start as start_run

TRAINABLE = sorted((loss, out) for loss, outs in L.VALID_OUTPUTS.items()
                   for out in outs if out != "step")
HIDDEN = ["tanh", "relu", "leaky_relu", "sigmoid"]
OPTIMIZERS = [lambda: fastmlp.SGD(lr=0.1), lambda: fastmlp.SGD(lr=0.05, momentum=0.9),
              lambda: fastmlp.Adam(lr=0.02), lambda: fastmlp.AdamW(lr=0.02, weight_decay=0.1)]
SCHEDULES = [lambda: schedules.Cosine(total_steps=5, warmup=2, min_factor=0.1),
             lambda: schedules.InverseScaling(0.5, counter="samples"),
             lambda: schedules.StepDecay(1, gamma=0.5),
             lambda: schedules.InverseScaling(0.3)]
TOL = {"float64": dict(rtol=1e-12, atol=1e-13), "float32": dict(rtol=1e-5, atol=1e-6)}


def problem(index, loss, out, dtype, n=9, n_inputs=3, k=3):
    rng = np.random.default_rng(index)
    layers = [(5, HIDDEN[index % len(HIDDEN)]), (k, out)]
    models = [fastmlp.MLP(n_inputs, layers, loss=loss, dtype=dtype, seed=index, l2=0.02,
                          optimizer=OPTIMIZERS[index % len(OPTIMIZERS)](), device=device)
              for device in ("cpu", "cuda")]
    X = rng.standard_normal((n, n_inputs))
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = rng.random((n, k))
    else:
        y = rng.standard_normal((n, k))
    w = rng.random(n) * 2
    w[1] = 0.0
    X, T = models[0].as_arrays(X, y)
    return models, X, T, w


def fit(model, X, T, w, schedule, l2_per_sample, epochs=2, batch_size=4, validation=None):
    r = start_run(model, X, T, batch_size, True, epochs, validation=validation, weights=w,
                  schedule=schedule, l2_per_sample=l2_per_sample)
    steps = epochs * -(-X.shape[0] // batch_size)
    assert r.train_steps(steps) == (OK, steps)
    return r


def assert_same_fit(cpu, gpu, tol):
    """cpu, gpu: the runs of the two fits (CpuRun, CudaRun)."""
    np.testing.assert_allclose(gpu.backend.get_params(), cpu.backend.get_params(), **tol)
    np.testing.assert_allclose(gpu.epoch_loss, cpu.epoch_loss, **tol)
    np.testing.assert_allclose(gpu.epoch_grad_norm, cpu.epoch_grad_norm, **tol)
    np.testing.assert_allclose(gpu.epoch_lr, cpu.epoch_lr, rtol=1e-15)
    assert gpu.current_lr() == pytest.approx(cpu.current_lr(), rel=1e-15)
    assert gpu.backend.get_state()["opt_step"][0] == cpu.backend.get_state()["opt_step"][0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,loss,out", [(i, *p) for i, p in enumerate(TRAINABLE)])
def test_weighted_loss_and_gradients_match_cpu(index, loss, out, dtype):
    (cpu, gpu), X, T, w = problem(index, loss, out, dtype)
    tol = TOL[dtype]
    for per_sample in (False, True):
        for weights in (w, None):
            args = (X, T, Objective(cpu.loss_code, cpu.l2, per_sample), weights)
            assert gpu.backend.loss_rows(*args) == pytest.approx(cpu.backend.loss_rows(*args),
                                                                 rel=tol["rtol"])
            np.testing.assert_allclose(gpu.backend.gradient_rows(*args),
                                       cpu.backend.gradient_rows(*args), **tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,loss,out", [(i, *p) for i, p in enumerate(TRAINABLE)])
def test_weighted_scheduled_fit_matches_cpu(index, loss, out, dtype):
    """Shuffled batches of 4, 4 and 1 rows, one row of zero weight, a schedule and (for
    odd pairs) l2_per_sample: every number the fit records agrees."""
    (cpu, gpu), X, T, w = problem(index, loss, out, dtype)
    per_sample = index % 2 == 1
    runs = [fit(model, X, T, w, SCHEDULES[index % len(SCHEDULES)](), per_sample)
            for model in (cpu, gpu)]
    assert not runs[1].fused  # weighted and scheduled: the tiled launches
    assert_same_fit(*runs, TOL[dtype])
    np.testing.assert_array_equal(runs[1].schedule.state, runs[0].schedule.state)


@pytest.mark.parametrize("fused", [False, "auto"])
def test_unweighted_l2_per_sample_matches_cpu_on_both_paths(monkeypatch, fused):
    """Unweighted, scikit-learn's l2 / rows is fixed per plan, so the fused kernel takes it
    too (batches of 4, 4 and 1 rows: two plans)."""
    monkeypatch.setattr(config, "CUDA_FUSED", fused)
    (cpu, gpu), X, T, _ = problem(2, "cross_entropy", "softmax", "float64")
    runs = [fit(model, X, T, None, None, True, epochs=3) for model in (cpu, gpu)]
    assert runs[1].fused == bool(fused) == gpu.backend.dws.fused
    assert_same_fit(*runs, TOL["float64"])


def test_a_batch_of_zero_weight_is_skipped_on_both_devices():
    (cpu, gpu), X, T, w = problem(1, "mse", "identity", "float64", n=8)
    w[4:] = 0.0  # unshuffled, the second batch of each epoch weighs nothing
    runs = []
    for model in (cpu, gpu):
        r = start_run(model, X, T, 4, False, 3, weights=w,
                      schedule=schedules.InverseScaling(1.0))
        assert r.train_steps(5) == (OK, 5)
        runs.append(r)
    assert_same_fit(*runs, TOL["float64"])
    assert runs[1].backend.get_state()["opt_step"][0] == 3
    np.testing.assert_array_equal(runs[1].schedule.state, runs[0].schedule.state)


def test_streamed_weighted_data_matches_cpu(monkeypatch):
    """Data over the device budget is streamed in chunks, weights with it."""
    (cpu, gpu), X, T, w = problem(3, "binary_cross_entropy", "sigmoid", "float64", n=11)
    row_bytes = (X.shape[1] + T.shape[1]) * 8 + 8
    monkeypatch.setattr(config, "CUDA_DATA_BYTES", 2 * 3 * row_bytes)  # two batches of 3
    runs = [fit(model, X, T, w, schedules.Exponential(0.7), True, epochs=2, batch_size=3)
            for model in (cpu, gpu)]
    assert runs[1].chunk_rows == 6
    assert_same_fit(*runs, TOL["float64"])


def test_weighted_validation_loss_and_plateau_match_cpu():
    (cpu, gpu), X, T, w = problem(0, "cross_entropy", "softmax", "float64")
    losses = []
    for model in (cpu, gpu):
        schedule = schedules.ReduceOnPlateau(factor=0.5, patience=0)
        r = start_run(model, X, T, 4, True, 3, validation=(X[:5], T[:5], w[:5]), weights=w,
                      schedule=schedule, l2_per_sample=True)
        seen = []
        for _ in range(3):
            assert r.train_steps(3) == (OK, 3)
            seen.append(r.validation_loss())
            schedule.epoch_end(seen[-1] + len(seen))  # worse each epoch: halve the rate
        losses.append((seen, r))
    (cpu_seen, cpu_b), (gpu_seen, gpu_b) = losses
    np.testing.assert_allclose(gpu_seen, cpu_seen, **TOL["float64"])
    assert_same_fit(cpu_b, gpu_b, TOL["float64"])
    np.testing.assert_array_equal(gpu_b.epoch_lr, [0.1, 0.1, 0.05])  # the first sets a best


def test_counters_after_a_failed_step_match_cpu():
    """An update that blows up stops both devices at the same step, with the same counters
    (the host recounts the steps it had queued past the failure)."""
    (cpu, gpu), X, T, w = problem(1, "mse", "identity", "float64")
    results = []
    for model in (cpu, gpu):
        schedule = schedules.InverseScaling(0.5)
        r = start_run(model, X, T, 4, True, 4, optimizer=fastmlp.SGD(lr=1e150), weights=w,
                      schedule=schedule)
        status, done = r.train_steps(12)
        results.append((status, done, schedule.state.copy(), r.epoch_lr.copy()))
    assert results[0][0] != OK and results[0][1] < 12
    assert results[0][:2] == results[1][:2]
    np.testing.assert_array_equal(results[1][2], results[0][2])
    np.testing.assert_array_equal(results[1][3], results[0][3])


@pytest.mark.parametrize("steps_per_launch", [False, True])
def test_constant_rate_fits_keep_the_record_on_every_path(monkeypatch, steps_per_launch):
    """Unweighted at a constant rate the fused kernels run (one step or many per launch);
    the rate of each epoch and the schedule's counters are recorded as on the CPU."""
    monkeypatch.setattr(config, "CUDA_FUSED", "auto")
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", steps_per_launch)
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS_PER_LAUNCH", 2)
    (cpu, gpu), X, T, _ = problem(4, "mse", "tanh", "float64")
    runs, states = [], []
    for model in (cpu, gpu):
        schedule = schedules.Constant()
        runs.append(fit(model, X, T, None, schedule, False, epochs=3))
        states.append(schedule.state.copy())
    assert runs[1].fused
    assert (runs[1].steps_run is not None) == steps_per_launch
    assert_same_fit(*runs, TOL["float64"])
    np.testing.assert_array_equal(states[1], states[0])
