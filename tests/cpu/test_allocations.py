"""Zero allocations per training step, counted by Numba's runtime (NRT) statistics.

Each array passed from Python into a compiled call counts once, so the test compares the
count for 1 step with the count for 100 steps inside one call, and fit on N vs 10 N rows.
"""
import numpy as np
import pytest
from numba.core.runtime import _nrt_python, rtsys

import fastmlp
from fastmlp.cpu import steps as cpu_steps
from fastmlp.core import schedules
from fastmlp.core.status import OK
from fastmlp.core.workspace import fit_state, step_config


@pytest.fixture(scope="module", autouse=True)
def nrt_stats():
    _nrt_python.memsys_enable_stats()
    yield
    _nrt_python.memsys_disable_stats()


def allocations(fn):
    before = rtsys.get_allocation_stats()
    fn()
    after = rtsys.get_allocation_stats()
    return after.alloc - before.alloc, after.mi_alloc - before.mi_alloc


MODELS = [
    (2, [(3, "relu"), (1, "sigmoid")], fastmlp.SGD(lr=0.1)),
    (40, [(64, "relu"), (48, "tanh"), (10, "softmax")], fastmlp.SGD(lr=0.1, momentum=0.9)),
    (5, [(7, "leaky_relu"), (3, "identity")], fastmlp.AdamW()),
]


def make(n_inputs, layers, optimizer, n, dtype):
    rng = np.random.default_rng(0)
    model = fastmlp.MLP(n_inputs, layers, optimizer=optimizer, dtype=dtype, seed=0)
    X = rng.standard_normal((n, n_inputs))
    k = layers[-1][0]
    y = rng.integers(0, k, n) if layers[-1][1] == "softmax" else rng.random((n, k))
    return model, X, y


#: (sample weights, schedule, l2_per_sample) of the fits counted: the plain loop, and every
#: option on, with weights of which some are zero (the skip path of a zero-weight batch).
OPTIONS = [(False, None, False),
           (True, lambda: schedules.Cosine(total_steps=60, warmup=5, min_factor=0.1), True),
           (True, lambda: schedules.InverseScaling(0.5, counter="samples"), False),
           (True, lambda: schedules.ReduceOnPlateau(), True)]


@pytest.mark.parametrize("weighted,schedule,l2_per_sample", OPTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_inputs,layers,optimizer", MODELS)
def test_train_steps_allocates_nothing_per_step(n_inputs, layers, optimizer, dtype, weighted,
                                                schedule, l2_per_sample):
    model, X, y = make(n_inputs, layers, optimizer, 300, dtype)
    X, T = model.as_arrays(X, y)
    ws = model.backend.ws
    ws.ensure_rows(32)
    weights = None
    if weighted:
        weights = np.random.default_rng(1).random(300)
        weights[:40] = 0.0  # with shuffle off, the first batch weighs nothing
    chosen = schedule() if schedule is not None else None
    config = step_config(model.spec, ws.rows, model.loss_code, model.optimizer, 0.01, 32,
                         not weighted, weighted, l2_per_sample, chosen)

    def run(steps):
        fit = fit_state(300, 20, len(layers), model.optimizer.hyper(), 32, weights, chosen)

        def call():
            status, done = cpu_steps.train_steps(ws.train_state(), fit, X, T, config, steps)
            assert (status, done) == (OK, steps)
        return call

    run(1)()  # compile
    one = allocations(run(1))
    many = allocations(run(100))  # 100 steps: 10 epochs of 10 batches (the last one short)
    assert one == many


@pytest.mark.parametrize("n_inputs,layers,optimizer", MODELS)
def test_fit_allocations_do_not_grow_with_data(n_inputs, layers, optimizer):
    model, X, y = make(n_inputs, layers, optimizer, 400, "float32")
    model.fit(X[:40], y[:40], epochs=1, batch_size=8, progress=False)  # compile
    small = allocations(lambda: model.fit(X[:40], y[:40], epochs=2, batch_size=8,
                                          progress=False))
    large = allocations(lambda: model.fit(X, y, epochs=2, batch_size=8, progress=False))
    assert small == large


def test_diagnostics_counts_the_loop_with_every_option_on():
    from fastmlp.bench.diagnostics import allocations_per_step
    model, X, y = make(*MODELS[1], 200, "float32")
    weights = np.random.default_rng(2).random(200)
    assert allocations_per_step(model, X, y, 16, steps=30, sample_weight=weights,
                                schedule=schedules.Cosine(total_steps=20, warmup=3),
                                l2_per_sample=True) == 0
