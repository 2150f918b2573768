"""Measurements about the engine itself, shared by the tests and the asv benchmarks.

Allocations are counted by Numba's runtime (NRT) statistics. Each array passed from Python
into a compiled call is counted once per call, so a per-step figure must compare runs that
make the same number of compiled calls: `fit` with `progress=False` runs a few thousand
steps in one call (training.FIRST_QUIET_STEPS), so a 1-step fit and an N-step fit differ only
by the N - 1 extra steps.
"""
import contextlib
import math

from numba.core.runtime import _nrt_python, rtsys


@contextlib.contextmanager
def nrt_statistics():
    """Turn NRT allocation statistics on for the block, then back to how they were."""
    was_enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        yield
    finally:
        if not was_enabled:
            _nrt_python.memsys_disable_stats()


def nrt_allocations(fn):
    """Number of NRT allocations made while fn() runs (needs nrt_statistics on)."""
    if not _nrt_python.memsys_stats_enabled():
        raise RuntimeError("NRT statistics are off: call nrt_allocations inside "
                           "`with nrt_statistics():`")
    before = rtsys.get_allocation_stats().alloc
    fn()
    return rtsys.get_allocation_stats().alloc - before


def allocations_per_step(model, X, y, batch_size, epochs=4):
    """NRT allocations per training step of model.fit on (X, y): must be 0.

    Compares fit on one batch for one epoch (1 step) with fit on all of X for `epochs`
    epochs (N steps), both with progress=False so that each is one compiled call:
    (count(N) - count(1)) / (N - 1). Allocations made once per epoch (a reshuffle that
    copies, say) show up as a fraction. Trains the model; the first fit compiles if needed.
    """
    X1, y1 = X[:batch_size], y[:batch_size]
    steps = epochs * math.ceil(len(X) / batch_size)
    if steps < 2:
        raise ValueError(f"need at least 2 steps to count per step; {len(X)} rows in batches "
                         f"of {batch_size} for {epochs} epochs make {steps}")

    def fit(X, y, epochs):
        return lambda: model.fit(X, y, epochs=epochs, batch_size=batch_size, shuffle=True,
                                 progress=False)

    fit(X1, y1, 1)()  # compile, and size the workspace for batch_size rows
    with nrt_statistics():
        one = nrt_allocations(fit(X1, y1, 1))
        many = nrt_allocations(fit(X, y, epochs))
    return (many - one) / (steps - 1)
