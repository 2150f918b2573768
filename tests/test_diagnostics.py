"""fastmlp.diagnostics: the allocation counter sees allocations, and fit makes none per step."""
import math

import numba
import numpy as np
import pytest
from numba.core.runtime import _nrt_python

from fastmlp.diagnostics import allocations_per_step, nrt_allocations, nrt_statistics
from fastmlp.workloads import WORKLOADS


@numba.njit
def allocate_each_step(n_steps):
    total = 0.0
    for _ in range(n_steps):
        a = np.ones(3)  # one NRT allocation per step
        total += a[0]
    return total


class AllocatingModel:
    """Stands in for an MLP whose fit allocates `per_step` arrays per step, in one call."""

    def __init__(self, per_step):
        self.per_step = per_step

    def fit(self, X, y, epochs, batch_size, shuffle, progress):
        allocate_each_step(self.per_step * epochs * math.ceil(len(X) / batch_size))


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
def test_allocations_per_step_sees_per_step_allocations(per_step):
    X, y = np.zeros((40, 2)), np.zeros(40)
    assert allocations_per_step(AllocatingModel(per_step), X, y, batch_size=8) == per_step


def test_allocations_per_step_needs_two_steps():
    X, y = np.zeros((8, 2)), np.zeros(8)
    with pytest.raises(ValueError, match="at least 2 steps"):
        allocations_per_step(AllocatingModel(1), X, y, batch_size=8, epochs=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["xor", "x2", "mnist-small"])
def test_fit_allocates_nothing_per_step_on_the_workloads(name, dtype):
    w = WORKLOADS[name]
    X, y = w.make_data(n_samples=4 * w.batch_size)
    assert allocations_per_step(w.build(dtype=dtype, seed=0), X, y, w.batch_size) == 0
