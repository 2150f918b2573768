"""The data-parallel kernels (cpu/parallel.py) against the serial ones, and the thread choice.

The parallel step splits the batch's rows into parts and adds the parts' gradients; in
float64 it matches the serial kernel (itself checked against numpy, torch and central
differences) to rounding, for every option the serial one takes. Its result must not depend
on how many threads ran the parts.
"""
import os

import numba
import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.core import schedules
from fastmlp.cpu import parallel, threads
from fastmlp.cpu import steps as cpu_steps
from fastmlp.core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK
from fastmlp.core.workspace import fit_state, step_config
from tests.runs import recorded_runs

TOL = {"float64": dict(rtol=1e-11, atol=1e-13), "float32": dict(rtol=2e-4, atol=2e-5)}

MODELS = {
    "relu-softmax-adam": (12, [(20, "relu"), (4, "softmax")], lambda: fastmlp.Adam(lr=0.01)),
    "tanh-sigmoid-momentum": (7, [(9, "tanh"), (6, "leaky_relu"), (3, "sigmoid")],
                              lambda: fastmlp.SGD(lr=0.1, momentum=0.9, nesterov=True)),
    "identity-mse-adamw": (5, [(8, "sigmoid"), (2, "identity")],
                           lambda: fastmlp.AdamW(lr=0.01, weight_decay=0.1)),
}


def make(name, dtype, n=203, seed=0, l2=0.0):
    n_inputs, layers, optimizer = MODELS[name]
    rng = np.random.default_rng(seed)
    model = fastmlp.MLP(n_inputs, layers, optimizer=optimizer(), dtype=dtype, seed=seed, l2=l2)
    X = rng.standard_normal((n, n_inputs))
    k, out = layers[-1]
    if out == "softmax":
        y = rng.integers(0, k, n)
    elif out == "sigmoid":
        y = rng.integers(0, 2, (n, k))
    else:
        y = rng.standard_normal((n, k))
    return model, X, y


def run(model, X, y, kernel, steps, batch_size=32, parts=2, weights=None, schedule=None,
        l2_per_sample=False, shuffle=True, threads=None):
    """`steps` steps of the serial ("serial") or parallel kernel from the model's current
    state, which is put back afterwards; returns what the call leaves behind."""
    ws = model.backend.ws
    ws.ensure_rows(batch_size)
    Xc, T = model.as_arrays(X, y)
    saved = {name: getattr(ws, name).copy() for name in ("params", "moment1", "moment2",
                                                         "opt_step", "rng")}
    chosen = schedule() if schedule is not None else None
    cfg = step_config(model.spec, ws.rows, model.loss_code, model.optimizer, model.l2,
                      batch_size, shuffle, weights is not None, l2_per_sample, chosen)
    fit = fit_state(X.shape[0], steps + 2, len(model.spec.layers), model.optimizer.hyper(),
                    batch_size, weights, chosen)
    if kernel == "serial":
        status, done = cpu_steps.train_steps(ws.train_state(), fit, Xc, T, cfg, steps)
    else:
        bufs = parallel.PartBuffers(model.spec, model.dtype, parts, -(-batch_size // parts))
        status, done = parallel.train_steps(ws.train_state(), fit, Xc, T, cfg, steps,
                                            *bufs.arrays(), threads=threads)
    out = {"status": int(status), "done": int(done), "cursor": fit.cursor.copy(),
           "perm": fit.perm.copy(), "epoch_loss": fit.epoch_loss.copy(),
           "epoch_grad_norm": fit.epoch_grad_norm.copy(), "epoch_lr": fit.epoch_lr.copy(),
           "schedule": fit.schedule_state.copy()}
    for name in saved:
        out[name] = getattr(ws, name).copy()
        getattr(ws, name)[...] = saved[name]
    return out


def assert_same(a, b, tol):
    for key in a:
        if key in ("status", "done"):
            assert a[key] == b[key], key
        elif np.issubdtype(np.asarray(a[key]).dtype, np.integer):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        elif tol is None:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], err_msg=key, equal_nan=True, **tol)


OPTIONS = {
    "plain": {},
    "l2": {"l2": 0.01},
    "weighted-cosine-per-sample": {
        "weights": True, "l2": 0.01, "l2_per_sample": True,
        "schedule": lambda: schedules.Cosine(total_steps=30, warmup=4, min_factor=0.1)},
    "invscaling-no-shuffle": {"schedule": lambda: schedules.InverseScaling(0.5),
                              "shuffle": False},
}


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("name", list(MODELS))
def test_parallel_step_matches_the_serial_one(name, option, parts):
    opts = dict(OPTIONS[option])
    model, X, y = make(name, "float64", l2=opts.pop("l2", 0.0))
    if opts.pop("weights", False):
        weights = np.random.default_rng(3).random(X.shape[0])
        weights[:40] = 0.0  # without shuffle the first batch would weigh nothing
        opts["weights"] = weights
    serial = run(model, X, y, "serial", 20, **opts)
    split = run(model, X, y, "parallel", 20, parts=parts, **opts)
    assert serial["status"] == OK and serial["done"] == 20
    assert_same(serial, split, TOL["float64"])


def test_float32_and_a_short_last_batch():
    model, X, y = make("relu-softmax-adam", "float32", n=100)
    # 100 rows in batches of 48: the last batch has 4 rows, one or two a part
    assert_same(run(model, X, y, "serial", 9, batch_size=48),
                run(model, X, y, "parallel", 9, batch_size=48), TOL["float32"])


def test_more_parts_than_rows():
    model, X, y = make("relu-softmax-adam", "float64", n=10)
    # batches of 4 rows over 5 parts: one part is empty in every step; the last batch (2
    # rows) leaves three empty
    assert_same(run(model, X, y, "serial", 7, batch_size=4),
                run(model, X, y, "parallel", 7, batch_size=4, parts=5), TOL["float64"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_the_threads(dtype):
    model, X, y = make("relu-softmax-adam", dtype)
    one = run(model, X, y, "parallel", 15, parts=3, threads=1)
    two = run(model, X, y, "parallel", 15, parts=3, threads=2)
    three = run(model, X, y, "parallel", 15, parts=3, threads=3)
    assert_same(one, two, None)  # bit for bit
    assert_same(one, three, None)


@pytest.mark.parametrize("what", ["diverges", "overflowing_input"])
def test_stops_where_the_serial_kernel_stops(what):
    model, X, y = make("identity-mse-adamw" if what == "diverges" else "relu-softmax-adam",
                       "float32")
    if what == "diverges":
        model.optimizer = fastmlp.SGD(lr=1e6)
        y = y * 1e15
        expected = NONFINITE_LOSS
    else:
        X[70, :] = 3e38
        expected = (NONFINITE_LOSS, NONFINITE_GRADIENT)
    serial = run(model, X, y, "serial", 40)
    split = run(model, X, y, "parallel", 40)
    assert serial["status"] in np.atleast_1d(expected) and 0 < serial["done"] < 40
    assert_same(serial, split, TOL["float32"])


@pytest.fixture
def parallel_for_any_size(monkeypatch):
    """Every fit and forward split, whatever its size (two threads needed: CI has two)."""
    if threads.cores() < 2:
        pytest.skip("the parallel kernels need two cores")
    monkeypatch.setattr(config, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(config, "PARALLEL_MIN_PART_ROWS", 1)
    monkeypatch.setattr(config, "PARALLEL_MIN_FORWARD_ROWS", 1)
    monkeypatch.setattr(config, "CPU_THREADS", 2)


def test_fit_trains_with_the_parallel_kernel_and_keeps_its_records(parallel_for_any_size,
                                                                   monkeypatch):
    runs = recorded_runs(monkeypatch)
    model, X, y = make("relu-softmax-adam", "float64")
    history = model.fit(X, y, epochs=4, batch_size=32, progress=False)
    assert runs[-1].path() == "parallel"
    monkeypatch.setattr(config, "CPU_THREADS", 1)
    serial_model, _, _ = make("relu-softmax-adam", "float64")
    serial_history = serial_model.fit(X, y, epochs=4, batch_size=32, progress=False)
    assert runs[-1].path() == "generic"
    np.testing.assert_allclose(model.backend.get_params(), serial_model.backend.get_params(),
                               **TOL["float64"])
    for key in ("loss", "lr"):
        np.testing.assert_allclose(getattr(history, key), getattr(serial_history, key),
                                   **TOL["float64"])
    # a second fit continues where the first stopped, as one longer fit
    more, _, _ = make("relu-softmax-adam", "float64")
    monkeypatch.setattr(config, "CPU_THREADS", 2)
    more.fit(X, y, epochs=2, batch_size=32, progress=False)
    more.fit(X, y, epochs=2, batch_size=32, progress=False)
    np.testing.assert_array_equal(more.backend.get_params(), model.backend.get_params())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_in_parts_matches_the_serial_forward(parallel_for_any_size, monkeypatch,
                                                      dtype):
    model, X, _ = make("tanh-sigmoid-momentum", dtype, n=5000)
    monkeypatch.setattr(config, "FORWARD_CHUNK_ROWS", 256)  # many chunks to claim
    split = model.forward(X)
    assert model.backend.forward_parts is not None
    monkeypatch.setattr(config, "CPU_THREADS", 1)
    np.testing.assert_allclose(split, model.forward(X), **TOL[dtype])


# A split forward reads NaN and infinity off the first layer's pre-activations instead of a
# pass over X (parallel.first_layer_finite): every architecture shape of that layer (BLAS,
# hand-written loops, the output layer itself), values anywhere, and the exact check after.
FIRST_LAYERS = [(40, [(16, "relu"), (3, "softmax")]),   # a product BLAS computes
                (5, [(2, "relu"), (1, "sigmoid")]),      # loops (narrower than BLAS_MIN_WIDTH)
                (6, [(3, "softmax")])]                   # the output layer is the first


@pytest.mark.parametrize("n_inputs,layers", FIRST_LAYERS)
@pytest.mark.parametrize("value,row,col", [(np.nan, 0, 0), (np.inf, -1, -1), (-np.inf, 700, 2)])
def test_a_split_forward_refuses_nan_and_infinity_in_x(parallel_for_any_size, monkeypatch,
                                                      n_inputs, layers, value, row, col):
    monkeypatch.setattr(config, "FORWARD_CHUNK_ROWS", 128)
    model = fastmlp.MLP(n_inputs, layers, dtype="float32", seed=0)
    X = np.random.default_rng(0).normal(size=(1500, n_inputs)).astype(np.float32)
    expected = model.forward(X)
    assert model.backend.forward_parts is not None  # the split pass ran
    bad = X.copy()
    bad[row, col] = value
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite value"):
        model.forward(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(bad)
    np.testing.assert_array_equal(model.forward(X), expected)  # the flag does not linger


def test_a_split_forward_sees_infinity_times_a_zero_weight(parallel_for_any_size):
    model = fastmlp.MLP(4, [(16, "relu"), (2, "softmax")], dtype="float64", seed=0)
    weights = model.get_weights()
    weights[0][0][0, :] = 0.0  # input 0 reaches no unit: inf * 0 is NaN all the same
    model.set_weights(weights)
    X = np.ones((3000, 4))
    X[2999, 0] = np.inf
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite value"):
        model.forward(X)


def test_a_split_forward_of_finite_x_that_overflows_is_not_refused(parallel_for_any_size):
    model = fastmlp.MLP(8, [(16, "tanh"), (2, "softmax")], dtype="float32", seed=0)
    X = np.random.default_rng(1).normal(size=(3000, 8)).astype(np.float32)
    expected = model.forward(X)
    X[5] = 3e38  # finite, and infinite once multiplied: the exact check lets it through
    out = model.forward(X)
    np.testing.assert_array_equal(np.delete(out, 5, 0), np.delete(expected, 5, 0))


def test_a_split_forward_starts_the_team_only_for_rows(parallel_for_any_size, monkeypatch):
    """forward's call of no rows (it loads the kernel before the timed calls) runs in this
    thread: starting and joining the team for it cost every split predict a hand-over."""
    from fastmlp.cpu import team
    model, X, _ = make("tanh-sigmoid-momentum", "float32", n=3000)
    runs = []
    run = team.run

    def recording(kernel, size, args, sync):
        runs.append((size, args[-1] - args[-2]))  # team_forward's (lo, hi) come last
        return run(kernel, size, args, sync)

    monkeypatch.setattr(team, "run", recording)
    model.forward(X)
    assert runs and all(rows > 0 for size, rows in runs if size > 1), runs
    assert (1, 0) in runs


def test_the_chooser_times_whole_blocks_of_rows_only(parallel_for_any_size, monkeypatch):
    """A forward's short last block runs untimed: timed, its few rows made the thread count
    that ran it look many times faster per block than it is."""
    from fastmlp.cpu import team
    model, X, _ = make("tanh-sigmoid-momentum", "float32", n=3 * 2 * 512 + 50)
    timing, timed_rows, untimed_rows = [], [], []
    run, chooser_timed = team.run, threads.ThreadChooser._timed

    def recording(kernel, size, args, sync):
        (timed_rows if timing else untimed_rows).append(args[-1] - args[-2])
        return run(kernel, size, args, sync)

    def timed(self, call, n_threads, units):
        timing.append(True)
        try:
            return chooser_timed(self, call, n_threads, units)
        finally:
            timing.pop()

    monkeypatch.setattr(team, "run", recording)
    monkeypatch.setattr(threads.ThreadChooser, "_timed", timed)
    monkeypatch.setattr(config, "THREAD_PROBE_ROUNDS", 1)
    out = model.forward(X)
    assert timed_rows and all(rows % 1024 == 0 for rows in timed_rows), timed_rows
    assert 50 in untimed_rows and sum(timed_rows) + sum(untimed_rows) == len(X)
    np.testing.assert_allclose(out[-50:], model.forward(X[-50:]), **TOL["float32"])


def test_forward_in_parts_gives_the_same_bits_on_any_number_of_threads(monkeypatch):
    """The chunks fix the arithmetic: one member doing every chunk and two claiming them as
    they come write the same bits, and a range that starts mid-array and ends in a short
    chunk is covered exactly (rows outside it untouched)."""
    from fastmlp.cpu import team
    teams = []
    run_members = team._run_members
    monkeypatch.setattr(team, "_run_members", lambda kernel, size, args, sync: (
        teams.append(size), run_members(kernel, size, args, sync))[1])
    model, X, _ = make("tanh-sigmoid-momentum", "float32", n=5000)
    X = X.astype(np.float32)
    backend, spec = model.backend, model.spec
    results = []
    for n_threads in (1, 2, 2):
        bufs = parallel.PartBuffers(spec, backend.dtype, 2, 128)
        out = np.full((X.shape[0], spec.n_outputs), -7.0, np.float32)
        parallel.forward_parts(out, bufs.acts, bufs.deltas, bufs.logits, X,
                               backend.ws.params, spec.table, bufs.rows, 300, 4990, bufs.sync,
                               threads=n_threads)
        results.append(out)
    assert teams == [2, 2]  # both two-thread calls ran on the team, not one thread alone
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    assert (results[0][:300] == -7.0).all() and (results[0][4990:] == -7.0).all()
    np.testing.assert_allclose(results[0][300:4990], model.forward(X[300:4990]),
                               **TOL["float32"])


class FakeClock:
    """threads.py's clock, moved on by the fake kernels alone: sleeping instead made the
    chooser's tests fail on a loaded machine, where a 1 ms sleep can last 5."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(threads, "time", fake)
    return fake


class FakeKernel:
    """A call(threads, units) whose time per unit is set per thread count."""

    def __init__(self, seconds, clock):
        self.seconds, self.clock = seconds, clock
        self.calls = []

    def __call__(self, n_threads, units):
        self.calls.append((n_threads, units))
        self.clock.now += self.seconds[n_threads] * units
        return OK, units


def test_chooser_runs_the_rest_with_the_faster_option(clock):
    kernel = FakeKernel({2: 0.004, 1: 0.001}, clock)
    chooser = threads.ThreadChooser(2, probe_units=2, reprobe_seconds=60, probe_rounds=2)
    assert chooser.run(kernel, 16) == (OK, 16)
    # each option warmed up untimed, then timed twice; the rest with the faster
    assert kernel.calls == [(2, 2)] * 3 + [(1, 2)] * 3 + [(1, 4)]
    kernel.calls.clear()
    chooser.run(kernel, 5)  # both measured recently: no probe
    assert kernel.calls == [(1, 5)]


def test_chooser_probes_again_when_its_figures_are_old(clock):
    kernel = FakeKernel({2: 0.001, 1: 0.004}, clock)
    chooser = threads.ThreadChooser(2, probe_units=1, reprobe_seconds=0.05, probe_rounds=1)
    chooser.run(kernel, 6)
    assert kernel.calls == [(2, 1), (2, 1), (1, 1), (1, 1), (2, 2)]
    kernel.seconds = {2: 0.01, 1: 0.001}  # the second core got busy
    clock.now += 0.06
    kernel.calls.clear()
    chooser.run(kernel, 6)
    assert kernel.calls == [(2, 1), (1, 1), (1, 4)]  # timed again (no warm-up), then one


def test_a_slow_first_call_does_not_decide_the_choice(clock):
    """The first units of an option pay one-off costs: a first call of two threads as slow
    as one thread must not make the chooser keep one thread (it did in about one fresh
    process in three)."""
    seconds = {2: 0.001, 1: 0.0015}
    calls = []

    def kernel(n_threads, units):  # the first call of all runs 3x slower (cold caches)
        clock.now += seconds[n_threads] * units * (3 if not calls else 1)
        calls.append(n_threads)
        return OK, units

    chooser = threads.ThreadChooser(2, probe_units=3, reprobe_seconds=60)
    chooser.run(kernel, 100)
    assert chooser.best() == 2


def test_one_stalled_probe_does_not_decide_the_choice(clock):
    """A probe call stalled by another tenant of a shared core (one call of three steps
    that took 18 ms in place of 1.5, seen in a fresh process) must not make the chooser
    keep one thread: the fastest of its timed calls counts."""
    kernel = FakeKernel({2: 0.0005, 1: 0.0009}, clock)
    stalled = []

    def call(n_threads, units):
        status, ran = kernel(n_threads, units)
        if n_threads == 2 and len(kernel.calls) == 2:  # the first timed call of two threads
            clock.now += 0.018
            stalled.append(units)
        return status, ran

    chooser = threads.ThreadChooser(2, probe_units=3, reprobe_seconds=60, probe_rounds=2)
    chooser.run(call, 100)
    assert stalled and chooser.best() == 2 and kernel.calls[-1][0] == 2
    one_round = threads.ThreadChooser(2, probe_units=3, reprobe_seconds=60, probe_rounds=1)
    kernel.calls.clear()
    one_round.run(call, 100)
    assert one_round.best() == 1  # what a single timed call did


def test_a_stall_in_a_long_run_leads_to_new_probes_not_a_switch(clock):
    """A long run of the chosen option slowed by one stall makes that option's mean look
    slower than the other's probe: the next call times both again, and goes on with the
    option that is faster when it is timed afresh."""
    kernel = FakeKernel({2: 0.0005, 1: 0.0009}, clock)
    chooser = threads.ThreadChooser(2, probe_units=3, reprobe_seconds=60, probe_rounds=2)
    chooser.run(kernel, 100)
    assert chooser.best() == 2

    def stalled(n_threads, units):
        clock.now += 0.5  # the whole machine paused once
        return kernel(n_threads, units)

    chooser.run(stalled, 100)
    assert chooser.best() == 1  # the long run's mean, stall included
    kernel.calls.clear()
    chooser.run(kernel, 100)
    assert kernel.calls == [(2, 3), (2, 3), (1, 3), (1, 3), (2, 88)]


def test_a_core_that_stays_busy_still_gives_one_thread(clock):
    """Every call of two threads slow (the other core held by another process): all
    rounds are slow, and one thread runs."""
    kernel = FakeKernel({2: 0.01, 1: 0.001}, clock)
    chooser = threads.ThreadChooser(2, probe_units=3, reprobe_seconds=60, probe_rounds=3)
    chooser.run(kernel, 100)
    assert chooser.best() == 1 and kernel.calls[-1] == (1, 100 - 8 * 3)


def test_chooser_stops_at_a_failed_call_and_compiles_on_zero_units(clock):
    def failing(n_threads, units):
        return NONFINITE_LOSS, 0
    chooser = threads.ThreadChooser(2)
    assert chooser.run(failing, 10) == (NONFINITE_LOSS, 0)
    kernel = FakeKernel({2: 0.0, 1: 0.0}, clock)
    assert chooser.run(kernel, 0) == (OK, 0) and kernel.calls == [(chooser.best(), 0)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX")
def test_a_forked_child_trains_with_its_own_team(parallel_for_any_size, monkeypatch):
    runs = recorded_runs(monkeypatch)
    model, X, y = make("relu-softmax-adam", "float64")
    model.fit(X, y, epochs=1, batch_size=32, progress=False)  # the team is running now
    expected = model.backend.get_params()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's team threads did not come along
        try:
            twin = fastmlp.MLP(12, [(20, "relu"), (4, "softmax")], optimizer=fastmlp.Adam(lr=0.01),
                               dtype="float64", seed=0)
            twin.fit(X, y, epochs=1, batch_size=32, progress=False)
            same = np.array_equal(twin.backend.get_params(), expected)
            os.write(write, runs[-1].path().encode() + (b" same" if same else b" differs"))
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    answer = os.read(read, 64)
    os.close(read)
    assert answer == b"parallel same"


def test_a_failing_member_stops_the_team_and_raises(monkeypatch):
    """An exception in one member (here a Python stand-in for the kernel) releases the
    others from their barrier and reaches the caller; the team works again afterwards."""
    from fastmlp.cpu import team

    def kernel(tid, size, arg, sync):
        if tid == 1:
            raise RuntimeError("member 1 failed")
        return team_wait(sync, size)

    def team_wait(sync, size):
        import time
        deadline = time.monotonic() + 30
        while sync[team.ABORT] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        return team.ABORTED

    sync = team.new_sync()
    with pytest.raises(RuntimeError, match="member 1 failed"):
        team.run(kernel, 2, (None,), sync)
    assert team.run(lambda tid, size, arg, sync: (tid, size), 2, (None,), sync) == (0, 2)


def test_ctrl_c_while_the_team_finishes_waits_for_every_member():
    """A Ctrl-C that lands while this thread waits for the members (the usual moment: right
    after its own share returns) is raised only once every member has returned: a member
    still at work when the team goes to the next call would write into that call's
    buffers (a forward's rows, read back unwritten). Python stand-ins play the kernel."""
    import signal
    import threading
    import time
    from fastmlp.cpu import team

    finished = []

    def kernel(tid, size, arg, sync):
        if tid == 1:
            time.sleep(0.4)  # still at work when the press comes
            finished.append(tid)
        return tid

    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    sync = team.new_sync()
    try:
        with pytest.raises(KeyboardInterrupt):
            team.run(kernel, 2, (None,), sync)
        assert finished == [1]  # member 1 had returned before the interrupt came out
    finally:
        timer.cancel()
    finished.clear()
    assert team.run(kernel, 2, (None,), sync) == 0 and finished == [1]


def test_ctrl_c_between_hand_overs_aborts_the_members_already_started(monkeypatch):
    """A Ctrl-C after the first member got its task but before the next did: the started
    member, waiting at its first barrier for the others, is told to abort instead of
    spinning for ever (a stand-in kernel waits on ABORT as team.barrier does)."""
    import time
    from fastmlp.cpu import team

    def kernel(tid, size, arg, sync):
        deadline = time.monotonic() + 30
        while sync[team.ABORT] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        return team.ABORTED if sync[team.ABORT] else "hung"

    members = team._members.ensure(2)
    submit = type(members[1]).submit

    def interrupted_second(self, task):
        if self is members[1]:
            raise KeyboardInterrupt
        return submit(self, task)

    monkeypatch.setattr(type(members[1]), "submit", interrupted_second)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        team.run(kernel, 3, (None,), team.new_sync())
    assert time.monotonic() - start < 10
    assert members[0].done.is_set()  # the started member returned (it saw ABORT)
    monkeypatch.undo()
    assert team.run(lambda tid, size, arg, sync: tid, 3, (None,), team.new_sync()) == 0


def test_claimed_units_go_out_once_each_and_a_slow_member_takes_fewer():
    """team.claim hands out 0, 1, 2, ... once each across the members of a run, restarting
    at 0 in the next run; a member that works 20x longer per unit (a slow core, played by
    a longer loop) gets fewer units while the other keeps claiming."""
    from numba import njit
    from fastmlp.cpu import team

    @njit(nogil=True)
    def claims(tid, size, taker, units, delay, sync):
        unit = team.claim(sync)
        while unit < units:
            taker[unit] = tid
            spin = 0.0
            for i in range(delay[tid]):
                spin += i * 1e-9
            taker[unit] += 0 if spin >= 0 else 100  # uses spin: the loop is not removed
            unit = team.claim(sync)
        return 0

    sync = team.new_sync()
    for _ in range(3):  # NEXT restarts with every run
        taker = np.full(400, -1, np.int64)
        team.run(claims, 2, (taker, 400, np.array([20_000, 400_000]), ), sync)
        assert set(taker.tolist()) <= {0, 1} and (taker >= 0).all()
        assert (taker == 1).sum() < (taker == 0).sum()


def test_the_barrier_holds_every_member_until_all_arrive():
    """Each member adds its index to its slot in phase k, then after the barrier reads all
    slots: with a working barrier every member sees every slot of phase k, for many
    phases (a barrier that let one through early would show a stale slot)."""
    from numba import njit
    from fastmlp.cpu import team

    @njit(nogil=True)
    def phases(tid, size, slots, seen, sync):
        for k in range(1, 2001):
            slots[tid] = k
            team.barrier(sync, size)
            total = 0
            for j in range(size):
                total += slots[j]
            if total != k * size:
                seen[tid] += 1
            team.barrier(sync, size)
        return 0

    size = 3
    slots = np.zeros(size, np.int64)
    seen = np.zeros(size, np.int64)
    team.run(phases, size, (slots, seen), team.new_sync())
    assert seen.tolist() == [0] * size and slots.tolist() == [2000] * size


def test_parallel_steps_allocate_nothing():
    from numba.core.runtime import _nrt_python, rtsys
    model, X, y = make("relu-softmax-adam", "float32", n=300)
    ws = model.backend.ws
    ws.ensure_rows(32)
    Xc, T = model.as_arrays(X, y)
    weights = np.random.default_rng(1).random(300)
    chosen = schedules.Cosine(total_steps=60, warmup=5)
    cfg = step_config(model.spec, ws.rows, model.loss_code, model.optimizer, 0.01, 32, True,
                      True, True, chosen)
    bufs = parallel.PartBuffers(model.spec, model.dtype, 2, 16)

    def steps(n):
        fit = fit_state(300, 20, 2, model.optimizer.hyper(), 32, weights, chosen)
        before = rtsys.get_allocation_stats()
        assert parallel.train_steps(ws.train_state(), fit, Xc, T, cfg, n,
                                    *bufs.arrays()) == (OK, n)
        after = rtsys.get_allocation_stats()
        return after.alloc - before.alloc, after.mi_alloc - before.mi_alloc

    _nrt_python.memsys_enable_stats()
    try:
        steps(1)  # compile
        assert steps(1) == steps(100)
    finally:
        _nrt_python.memsys_disable_stats()


def test_a_cpu_fit_holds_blas_at_its_configured_threads(monkeypatch):
    from threadpoolctl import threadpool_info
    monkeypatch.setattr(config, "CPU_THREADS", 1)  # the serial kernel, which calls BLAS
    seen = []

    def record(model, history):  # runs inside the fit, between epochs
        seen.extend(lib["num_threads"] for lib in threadpool_info()
                    if lib["user_api"] == "blas")
    model, X, y = make("relu-softmax-adam", "float64")
    model.fit(X, y, epochs=2, batch_size=32, progress=False, callbacks=[record])
    assert seen and set(seen) == {config.BLAS_THREADS}


def test_mpi_ranks_keep_the_launchers_blas_threads():
    from fastmlp.cuda.run import CudaRun
    from fastmlp.cpu.mpi import MpiRun
    assert MpiRun.blas_limit is None and CudaRun.blas_limit is None


def test_two_fits_in_two_threads_share_the_team_safely(parallel_for_any_size):
    """Fits running at once in two Python threads: one gets the team, the other runs its
    parts alone; both give the weights a fit alone gives, bit for bit."""
    import threading
    models = [make("relu-softmax-adam", "float32", seed=s)[0] for s in (0, 1)]
    data = [make("relu-softmax-adam", "float32", seed=s)[1:] for s in (0, 1)]
    alone = [make("relu-softmax-adam", "float32", seed=s)[0] for s in (0, 1)]
    for model, (X, y) in zip(alone, data):
        model.fit(X, y, epochs=30, batch_size=32, progress=False)
    workers = [threading.Thread(target=m.fit, args=d,
                                kwargs=dict(epochs=30, batch_size=32, progress=False))
               for m, d in zip(models, data)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for together, single in zip(models, alone):
        np.testing.assert_array_equal(together.backend.get_params(),
                                      single.backend.get_params())
