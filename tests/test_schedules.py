"""Learning-rate schedules: the rate of every step of a real fit against closed forms in
numpy (and that the update used it), counters that continue across fits, ReduceOnPlateau
against scikit-learn's rule, and whole scikit-learn SGD runs (invscaling, adaptive) with
sample weights and its l2 convention."""
import math
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.core import schedules
from fastmlp.cpu import specialize
from fastmlp.core.schedules import LR, Constant, Cosine, Exponential, InverseScaling, ReduceOnPlateau, StepDecay
from fastmlp.core.status import OK
from tests.runs import start as start_run

N, BATCH = 10, 4          # batches of 4, 4 and 2 rows: three steps an epoch
STEPS_PER_EPOCH = 3
BASE = 0.2


def reference(schedule, k):
    """The closed form of the rate of step k (0-based, three steps an epoch of 10 rows)."""
    e = k // STEPS_PER_EPOCH
    if isinstance(schedule, Constant):
        return BASE
    if isinstance(schedule, InverseScaling):
        t = k + 1 if schedule.counter == "steps" else N * e + 1
        return BASE / t ** schedule.power
    if isinstance(schedule, StepDecay):
        return BASE * schedule.gamma ** (e // schedule.step_size)
    if isinstance(schedule, Exponential):
        return BASE * schedule.gamma ** e
    if isinstance(schedule, Cosine):
        t, total = (e, schedule.total_epochs) if schedule.total_epochs else \
            (k, schedule.total_steps)
        if t < schedule.warmup:
            return BASE * (t + 1) / schedule.warmup
        p = min((t - schedule.warmup) / max(total - schedule.warmup, 1), 1.0)
        return BASE * (schedule.min_factor
                       + (1 - schedule.min_factor) * 0.5 * (1 + np.cos(np.pi * p)))
    raise AssertionError(schedule)


SCHEDULES = [
    lambda: Constant(),
    lambda: InverseScaling(0.5),
    lambda: InverseScaling(0.7, counter="samples"),
    lambda: StepDecay(2, gamma=0.5),
    lambda: Exponential(0.8),
    lambda: Cosine(total_steps=10, warmup=3, min_factor=0.1),
    lambda: Cosine(total_epochs=4, warmup=1),
    lambda: Cosine(total_steps=12),
]


def data(seed=0):
    rng = np.random.default_rng(seed)
    model = fastmlp.MLP(3, [(4, "tanh"), (2, "identity")], optimizer=fastmlp.SGD(lr=BASE),
                        l2=0.01, dtype="float64", seed=seed)
    X, T = model.as_arrays(rng.standard_normal((N, 3)), rng.standard_normal((N, 2)))
    return model, X, T


@pytest.mark.parametrize("make", SCHEDULES, ids=lambda f: repr(f()))
def test_the_rate_of_every_step_is_the_closed_form_and_is_used(make):
    schedule = make()
    model, X, T = data()
    b = model.backend
    epochs = 5
    r = start_run(model, X, T, BATCH, False, epochs, schedule=schedule)
    for k in range(epochs * STEPS_PER_EPOCH):
        start = (k % STEPS_PER_EPOCH) * BATCH
        rows = slice(start, start + BATCH)
        gradient = b.gradient_rows(X[rows], T[rows], model.objective)
        before = b.get_params()
        assert r.train_steps(1) == (OK, 1)
        lr = reference(schedule, k)
        assert r.current_lr() == pytest.approx(lr, rel=1e-14)
        # plain SGD: the update is exactly -lr * (the batch gradient, l2 term included)
        np.testing.assert_allclose(b.get_params() - before, -lr * gradient, rtol=1e-9,
                                   atol=1e-15)
    last_of_epoch = [reference(schedule, STEPS_PER_EPOCH * e + 2) for e in range(epochs)]
    np.testing.assert_allclose(r.epoch_lr, last_of_epoch, rtol=1e-14)
    state = schedule.state
    assert (state[schedules.STEPS], state[schedules.EPOCHS], state[schedules.SAMPLES],
            state[schedules.EPOCH_START]) == (15, 5, 50, 50)


def test_a_second_fit_continues_the_schedule():
    """Two fits of 3 epochs with one schedule object == one fit of 6 epochs."""
    results = []
    for split in ([6], [3, 3]):
        schedule = Cosine(total_epochs=5, warmup=2, min_factor=0.05)
        model, X, T = data(1)
        b = model.backend
        rates = []
        for epochs in split:
            r = start_run(model, X, T, BATCH, False, epochs, schedule=schedule)
            assert r.train_steps(epochs * STEPS_PER_EPOCH) == (OK, epochs * STEPS_PER_EPOCH)
            rates += list(r.epoch_lr)
        results.append((b.get_params(), rates, schedule.state.copy()))
    (p1, r1, s1), (p2, r2, s2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(s1, s2)
    schedule.reset()
    assert schedule.state[schedules.STEPS] == 0 and schedule.lr(BASE) == BASE / 2  # warm-up


def test_generated_kernels_keep_the_same_record(monkeypatch):
    """A small network with a Constant schedule trains with a generated kernel; it records
    the rate and advances the counters as the generic kernel does."""
    records = []
    for generated in (True, False):
        monkeypatch.setattr(config, "SPECIALIZE", generated)
        model, X, T = data(2)
        schedule = Constant()
        r = start_run(model, X, T, BATCH, True, 3, schedule=schedule)
        assert (r.kernel is not None) == generated
        assert r.train_steps(7) == (OK, 7)
        records.append((r.epoch_lr.copy(), schedule.state.copy(), r.current_lr()))
    np.testing.assert_array_equal(records[0][0], records[1][0])
    np.testing.assert_array_equal(records[0][1], records[1][1])
    assert records[0][2] == records[1][2] == BASE


def test_schedules_weights_and_l2_per_sample_take_the_generic_kernel():
    assert specialize.supports(False, schedules.CONSTANT, False)
    assert not specialize.supports(True, schedules.CONSTANT, False)
    assert not specialize.supports(False, schedules.COSINE, False)
    assert not specialize.supports(False, schedules.CONSTANT, True)
    model, X, T = data()
    r = start_run(model, X, T, BATCH, True, 1, l2=0.0, schedule=Exponential(0.5))
    assert r.kernel is None


# -- ReduceOnPlateau: scikit-learn's adaptive rule --------------------------------------------
LOSSES = [1.0, 0.9, 0.95, 0.9, 0.89995, 0.7, 0.7, 0.70001, 0.69, float("nan"), 0.69, 0.8,
          0.6999, 0.5, 0.5, 0.5, 0.5, 0.49, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def sklearn_rates(values, lr, patience, tol, early_stopping):
    """scikit-learn's own code: the estimator's _update_no_improvement_count and the SGD
    optimizer's iteration_ends and trigger_stopping, glued as _fit_stochastic does.
    Returns the rate after each epoch and the epoch at which it stops (or None)."""
    neural = pytest.importorskip("sklearn.neural_network")
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer
    est = neural.MLPRegressor(n_iter_no_change=patience, tol=tol,
                              early_stopping=early_stopping)
    est.coefs_, est.intercepts_ = [], []
    est.loss_curve_, est._no_improvement_count = [], 0
    est.best_loss_ = np.inf
    est.validation_scores_, est.best_validation_score_ = [], -np.inf
    scores = iter(values)
    est._score = lambda X, y, sample_weight=None: next(scores)
    optimizer = SGDOptimizer([], lr, "adaptive")
    rates = []
    for epoch, value in enumerate(values):
        est.loss_curve_.append(value)
        est._update_no_improvement_count(early_stopping, None, None, None)
        optimizer.iteration_ends(epoch)
        if est._no_improvement_count > est.n_iter_no_change:
            if optimizer.trigger_stopping("", False):
                return rates, epoch
            est._no_improvement_count = 0
        rates.append(optimizer.learning_rate)
    return rates, None


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("patience,tol", [(2, 1e-4), (1, 1e-2), (0, 0.0)])
def test_reduce_on_plateau_is_sklearns_adaptive(patience, tol, early_stopping):
    lr = 4e-5  # four reductions reach scikit-learn's floor of 1e-6
    # with early stopping scikit-learn watches a score (higher is better): give it -loss
    values = [-v for v in LOSSES] if early_stopping else LOSSES
    expected, stop = sklearn_rates(values, lr, patience, tol, early_stopping)
    schedule = ReduceOnPlateau(patience=patience, tol=tol)
    schedule.start(lr)
    rates, stopped = [], None
    for epoch, value in enumerate(LOSSES):
        if schedule.epoch_end(value):
            stopped = epoch
            break
        rates.append(schedule.lr(123.0))  # the current rate, whatever the optimizer's lr
    assert rates == expected  # exactly: the same repeated division by 5
    assert stopped == stop
    assert stop is not None  # every setting reaches the floor within the sequence


def test_reduce_on_plateau_in_a_fit():
    """The rate a fit uses follows epoch_end, and a later fit continues from it."""
    model, X, T = data(3)
    schedule = ReduceOnPlateau(factor=0.5, patience=0)
    r = start_run(model, X, T, BATCH, False, 4, schedule=schedule)
    rates = []
    for loss in (1.0, 2.0, 3.0, 0.5):
        assert r.train_steps(STEPS_PER_EPOCH) == (OK, STEPS_PER_EPOCH)
        rates.append(r.current_lr())
        schedule.epoch_end(loss)
    assert rates == [BASE, BASE, BASE / 2, BASE / 4]
    np.testing.assert_array_equal(r.epoch_lr, rates)
    r = start_run(model, X, T, BATCH, False, 1, schedule=schedule)
    assert r.train_steps(1) == (OK, 1) and r.current_lr() == BASE / 4


# -- whole scikit-learn runs --------------------------------------------------------------
def sklearn_run(learning_rate, weights, epochs, **params):
    neural = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((N, 3)), rng.standard_normal(N)
    model = fastmlp.MLP(3, [(5, "tanh"), (1, "identity")], optimizer=fastmlp.SGD(lr=0.1),
                        l2=0.05, dtype="float64", seed=5)
    est = neural.MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", solver="sgd",
                              alpha=0.05, batch_size=BATCH, learning_rate=learning_rate,
                              learning_rate_init=0.1, momentum=0.0, shuffle=False,
                              max_iter=epochs, **params)
    pairs = iter([(W.copy(), b.copy()) for W, b in model.get_weights()])
    est._init_coef = lambda fan_in, fan_out, dtype: next(pairs)  # start from model's weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached
        est.fit(X, y, sample_weight=weights)
    return model, model.as_arrays(X, y), est


def test_sklearn_invscaling_with_weights_and_its_l2_is_reproduced():
    weights = np.random.default_rng(6).random(N) * 2
    model, (X, T), est = sklearn_run("invscaling", weights, 6, power_t=0.4)
    r = start_run(model, X, T, BATCH, False, 6, weights=weights,
              schedule=InverseScaling(0.4, counter="samples"), l2_per_sample=True)
    assert r.train_steps(6 * STEPS_PER_EPOCH) == (OK, 6 * STEPS_PER_EPOCH)
    np.testing.assert_allclose(r.epoch_loss / N, est.loss_curve_, rtol=1e-11)
    for (W, c), cW, cb in zip(model.get_weights(), est.coefs_, est.intercepts_):
        np.testing.assert_allclose(W, cW, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c, cb, rtol=1e-10, atol=1e-13)
    # scikit-learn sets the rate of the epoch after its last one
    assert r.current_lr() == pytest.approx(0.1 / (5 * N + 1) ** 0.4, rel=1e-14)


def test_sklearn_adaptive_run_is_reproduced():
    """tol=0.5 makes every epoch a bad one: the rate falls by 5 each epoch, until the stop."""
    model, (X, T), est = sklearn_run("adaptive", None, 30, tol=0.5, n_iter_no_change=1)
    schedule = ReduceOnPlateau(patience=1, tol=0.5)
    r = start_run(model, X, T, BATCH, False, 30, schedule=schedule, l2_per_sample=True)
    for epoch in range(30):
        assert r.train_steps(STEPS_PER_EPOCH) == (OK, STEPS_PER_EPOCH)
        if schedule.epoch_end(r.epoch_loss[epoch] / N):
            break
    assert epoch + 1 == len(est.loss_curve_) < 30  # stopped at the same epoch
    np.testing.assert_allclose(r.epoch_loss[:epoch + 1] / N, est.loss_curve_, rtol=1e-11)
    assert schedule.state[LR] == est._optimizer.learning_rate
    for (W, c), cW, cb in zip(model.get_weights(), est.coefs_, est.intercepts_):
        np.testing.assert_allclose(W, cW, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(c, cb, rtol=1e-10, atol=1e-13)


# -- checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: InverseScaling(-1), "power must be a finite number >= 0"),
    (lambda: InverseScaling(0.5, counter="epochs"), "'steps' or 'samples'"),
    (lambda: StepDecay(0), "step_size must be a finite number >= 1"),
    (lambda: StepDecay(1.5), "whole number"),
    (lambda: Exponential(math.inf), "gamma must be a finite number"),
    (lambda: Cosine(), "exactly one of total_epochs and total_steps"),
    (lambda: Cosine(total_epochs=3, total_steps=9), "exactly one"),
    (lambda: Cosine(total_steps=3, warmup=4), "warmup"),
    (lambda: Cosine(total_steps=3, min_factor=2), "min_factor"),
    (lambda: ReduceOnPlateau(factor=0), "factor must be a finite number > 0"),
    (lambda: ReduceOnPlateau(patience=-1), "patience"),
])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_types_and_configs():
    with pytest.raises(TypeError, match="power must be a number"):
        InverseScaling("0.5")
    with pytest.raises(TypeError, match="schedule must be None or a fastmlp.schedules"):
        schedules.check_schedule("cosine")
    for make in SCHEDULES + [lambda: ReduceOnPlateau(0.5, 3, 1e-3, 1e-7)]:
        schedule = make()
        assert schedules.from_config(schedule.config()) == schedule
        assert len(schedule.params()) == schedules.N_PARAMS


def test_an_unknown_code_is_refused():
    state = Constant().state
    with pytest.raises(ValueError, match="unknown schedule code"):
        schedules.scheduled_lr(max(schedules.CODES) + 1, np.zeros(schedules.N_PARAMS), state,
                               0.1)


def test_every_registered_schedule_is_tested():
    """A schedule added to schedules.SCHEDULES needs its closed form in `reference` above
    (ReduceOnPlateau has its own tests)."""
    tested = {type(make()) for make in SCHEDULES} | {ReduceOnPlateau}
    assert tested == set(schedules.SCHEDULES.values())
    assert sorted(cls.code for cls in tested) == list(schedules.CODES)


def test_current_lr_before_and_after_a_fit():
    model, X, T = data()
    r = start_run(model, X, T, BATCH, False, 1, schedule=InverseScaling(1.0))
    assert r.current_lr() == BASE  # the next update's, before any
    r.train_steps(2)
    assert r.current_lr() == BASE / 2


@pytest.mark.parametrize("n,batch_size", [(4, 4), (10, 3), (7, 2)])
def test_replaying_constant_steps_equals_advancing_step_by_step(n, batch_size):
    """The closed form the generated kernels' bookkeeping uses, against `advance` per step."""
    from fastmlp.core.schedules import N_STATE, advance, replay_constant_steps
    n_batches = -(-n // batch_size)
    for epoch, batch, done in [(0, 0, 1), (0, 1, 5), (2, n_batches - 1, 1), (1, 0, 37)]:
        if batch >= n_batches:
            continue
        state = np.arange(N_STATE, dtype=np.float64) * 3.0
        expect_state, expect_lr = state.copy(), np.full(60, np.nan)
        e, b = epoch, batch
        for _ in range(done):
            rows = min(batch_size, n - b * batch_size)
            expect_lr[e] = 0.25
            b += 1
            ended = b == n_batches
            advance(expect_state, 0.25, rows, True, ended)
            if ended:
                e, b = e + 1, 0
        got_lr = np.full(60, np.nan)
        replay_constant_steps(state, got_lr, np.array([epoch, batch]), done, n, batch_size, 0.25)
        np.testing.assert_array_equal(state, expect_state)
        np.testing.assert_array_equal(got_lr, expect_lr)
