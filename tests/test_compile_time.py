"""Compile time is a first run's cost, not training time: fit compiles (or loads) its kernels
with a 0-step call before anything is timed, reports it as History.compile_seconds, and the
progress bar says what is happening meanwhile."""
import functools
import time

import numba
import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.fit import loop as training
from fastmlp.cli import train as cli_train
from fastmlp.cli import main
from fastmlp.cpu.run import CpuRun
from tests.runs import start as start_run

SLOW = 0.6  # seconds the stand-in compile takes


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5])


def slow_compile(monkeypatch, calls=None):
    """Make every CPU run's 0-step call (the compile) take SLOW seconds longer."""
    real = CpuRun.train_steps

    def train_steps(run, n_steps):
        if calls is not None:
            calls.append(n_steps)
        if n_steps == 0:
            time.sleep(SLOW)
        return real(run, n_steps)

    monkeypatch.setattr(CpuRun, "train_steps", train_steps)


def test_compile_time_is_compile_seconds_not_an_epochs(monkeypatch):
    X, y = data()
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    calls = []
    slow_compile(monkeypatch, calls)
    h = model.fit(X, y, epochs=3, batch_size=8, progress=False)
    assert calls[0] == 0 and 0 not in calls[1:]  # one compile call, before every step
    assert h.compile_seconds >= SLOW
    assert h.seconds.sum() < SLOW  # 24 steps of a 3-4-1 network: far less than the compile
    assert h.epochs == 3


def test_a_cold_compile_is_not_in_the_epochs(monkeypatch):
    # A kernel nobody has compiled in this process: a fresh copy of the generic dispatcher
    # with numba's disk cache off, so the 0-step call really compiles.
    from fastmlp.cpu import steps as cpu_steps
    monkeypatch.setattr(config, "SPECIALIZE", False)
    fresh = numba.njit(cache=False, fastmath=set(config.FASTMATH), nogil=config.NOGIL,
                       error_model=config.ERROR_MODEL)(cpu_steps.train_steps.py_func)
    monkeypatch.setattr(cpu_steps, "train_steps", fresh)
    X, y = data()
    model = fastmlp.MLP(3, [(5, "tanh"), (1, "identity")], seed=0)
    start = time.perf_counter()
    h = model.fit(X, y, epochs=2, batch_size=8, progress=False)
    whole = time.perf_counter() - start
    assert len(fresh.signatures) == 1
    assert h.compile_seconds > 0.5 * whole  # the compile is most of a cold tiny fit ...
    assert h.seconds.sum() < h.compile_seconds / 10  # ... and none of its epochs


@pytest.mark.parametrize("generated", [True, False])
def test_zero_steps_change_nothing(monkeypatch, generated):
    """run.train_steps(0) compiles and trains nothing: cursor, permutation, rng,
    parameters, schedule and statistics stay as they were, for either kernel."""
    monkeypatch.setattr(config, "SPECIALIZE", generated)
    X, y = data(37)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    b = model.backend
    schedule = fastmlp.schedules.Constant()
    r = start_run(model, *model.as_arrays(X, y), 8, True, 2, schedule=schedule)
    assert (r.kernel is not None) == generated

    def snapshot():
        return {**b.get_state(), "cursor": np.array(r.cursor()),
                "schedule": schedule.state.copy(), "lr": r.epoch_lr.copy(),
                "loss": r.epoch_loss.copy(), "norms": r.epoch_grad_norm.copy()}

    before = snapshot()
    assert r.train_steps(0) == (0, 0)
    assert r.kernels_ready()
    after = snapshot()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_zero_step_call_leaves_the_training_unchanged():
    X, y = data()
    args = (3, [(4, "tanh"), (1, "identity")])
    one, two = fastmlp.MLP(*args, seed=0), fastmlp.MLP(*args, seed=0)
    one.fit(X, y, epochs=3, batch_size=8, progress=False)
    run = start_run(two, *two.as_arrays(X, y), 8, True, 3)
    for _ in range(3):
        run.train_steps(0)
    run.close()
    two.fit(X, y, epochs=3, batch_size=8, progress=False)
    for (W, b), (W2, b2) in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_the_bar_says_compiling_then_restarts_its_clock(monkeypatch, capsys):
    X, y = data()
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    slow_compile(monkeypatch)
    monkeypatch.setattr(CpuRun, "kernels_ready", lambda run: False)
    model.fit(X, y, epochs=2, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert training.COMPILING == "compiling kernels (first run only)"
    assert training.COMPILING in err
    final = err.split("\r")[-1]  # the bar as it was left
    assert "epoch 2/2" in final
    assert "[00:00<" in final  # its clock started after the compile (SLOW > 0.5 s)


def test_the_bar_says_nothing_of_compiling_when_the_kernels_are_loaded(monkeypatch, capsys):
    X, y = data()
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    model.fit(X, y, epochs=1, batch_size=8, progress=False)  # compiled now
    capsys.readouterr()
    model.fit(X, y, epochs=2, batch_size=8, progress=True)
    assert training.COMPILING not in capsys.readouterr().err


def test_history_keeps_compile_seconds_through_callbacks_and_errors(monkeypatch):
    X, y = data()
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    slow_compile(monkeypatch)
    seen = []
    model.fit(X, y, epochs=2, batch_size=8, progress=False,
              callbacks=[lambda m, h: seen.append(h.compile_seconds)])
    assert len(seen) == 2 and min(seen) >= SLOW
    assert fastmlp.History().compile_seconds == 0.0


@pytest.mark.parametrize("seconds,shown", [(12.34, True), (0.2, False)])
def test_the_cli_summary_names_the_compile_time(monkeypatch, capsys, seconds, shown):
    real_fit = fastmlp.MLP.fit

    @functools.wraps(real_fit)
    def fit(self, *args, **kwargs):
        history = real_fit(self, *args, **kwargs)
        history.compile_seconds = seconds
        return history

    monkeypatch.setattr(fastmlp.MLP, "fit", fit)
    assert main(["train", "--dataset", "xor", "--epochs", "5", "--quiet"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("xor: 5 epochs in ")
    note = f"(+{seconds:.1f} s compiling kernels, first run only)"
    assert (note in line) == shown
    assert cli_train.SHOW_COMPILE_SECONDS == 0.5
