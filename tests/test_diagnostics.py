"""fastmlp.bench.diagnostics: the allocation counter sees allocations, and training makes none."""
import numba
import numpy as np
import pytest
from numba.core.runtime import _nrt_python

import fastmlp
from fastmlp.cpu import steps as cpu_steps
from fastmlp.bench.diagnostics import allocations_per_step, nrt_allocations, nrt_statistics
from fastmlp.bench.workloads import WORKLOADS


@numba.njit
def allocate_each_step(n_steps):
    total = 0.0
    for _ in range(n_steps):
        a = np.ones(3)  # one NRT allocation per step
        total += a[0]
    return total


def allocating_train_steps(per_step, status=cpu_steps.OK):
    """Stands in for cpu_steps.train_steps: allocates `per_step` arrays per step."""
    def train_steps(*args):
        n_steps = args[-1]
        allocate_each_step(per_step * n_steps)
        return status, n_steps if status == cpu_steps.OK else 0
    return train_steps


XOR = (np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), np.array([0, 1, 1, 0]))


def test_nrt_allocations_counts_each_allocation():
    allocate_each_step(1)  # compile outside the count
    with nrt_statistics():
        assert nrt_allocations(lambda: allocate_each_step(10)) \
            - nrt_allocations(lambda: allocate_each_step(1)) == 9


def test_nrt_statistics_restores_the_previous_state():
    was_enabled = _nrt_python.memsys_stats_enabled()
    with nrt_statistics():
        assert _nrt_python.memsys_stats_enabled()
    assert _nrt_python.memsys_stats_enabled() == was_enabled


def test_nrt_allocations_refuses_to_count_with_statistics_off():
    was_enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_disable_stats()
    try:
        with pytest.raises(RuntimeError, match="nrt_statistics"):
            nrt_allocations(lambda: None)
    finally:
        if was_enabled:
            _nrt_python.memsys_enable_stats()


@pytest.mark.parametrize("per_step", [1, 3])
def test_allocations_per_step_sees_per_step_allocations(monkeypatch, generic_kernel, per_step):
    monkeypatch.setattr(cpu_steps, "train_steps", allocating_train_steps(per_step))
    model = fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")], seed=0)
    assert allocations_per_step(model, *XOR, batch_size=2) == per_step


def test_allocations_per_step_refuses_a_partial_count(monkeypatch, generic_kernel):
    monkeypatch.setattr(cpu_steps, "train_steps",
                        allocating_train_steps(0, status=cpu_steps.NONFINITE_LOSS))
    model = fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")], seed=0)
    with pytest.raises(FloatingPointError, match="partial"):
        allocations_per_step(model, *XOR, batch_size=2)


def test_allocations_per_step_needs_two_steps():
    model = fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")], seed=0)
    with pytest.raises(ValueError, match="at least 2 steps"):
        allocations_per_step(model, *XOR, batch_size=2, steps=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["xor", "x2", "mnist-small"])
def test_training_allocates_nothing_per_step_on_the_workloads(name, dtype):
    w = WORKLOADS[name]
    X, y = w.make_data(n_samples=4 * w.batch_size)
    # 12 steps over epochs of 4 batches (xor: of 1), so per-epoch work is counted too.
    assert allocations_per_step(w.build(dtype=dtype, seed=0), X, y, w.batch_size,
                                steps=12) == 0
