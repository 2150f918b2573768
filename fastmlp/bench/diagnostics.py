"""Measurements about the engine itself, shared by the tests and the asv benchmarks.

Allocations are counted by Numba's runtime (NRT) statistics. Each array passed from Python
into a compiled call is counted once per call, so a per-step figure compares two compiled
calls, one of 1 step and one of N steps, and divides the difference by N - 1. `fit` cannot
be used for that: how many calls it makes depends on how long steps take.
"""
import contextlib
import dataclasses
import math

from numba.core.runtime import _nrt_python, rtsys

from ..core.status import OK


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


def allocations_per_step(model, X, y, batch_size, steps=8, *, sample_weight=None,
                         schedule=None, l2_per_sample=False):
    """NRT allocations per CPU training step on (X, y), shuffled as fit does: must be 0.
    sample_weight and schedule (a fastmlp.schedules schedule) go into the fit's plan, to
    count the loop with them on; l2_per_sample=True counts it with scikit-learn's l2 convention.

    Runs the run a fit trains with (model.backend.start(plan): fit/protocols.Run) once
    for 1 step and once for `steps` steps: (count(steps) - count(1)) / (steps - 1). When
    `steps` spans several epochs, an allocation made once per epoch (a reshuffle that
    copies, say) shows as a fraction. Trains the model; the first call compiles if needed.
    """
    from ..fit.plan import plan_for
    if steps < 2:
        raise ValueError(f"need at least 2 steps to count per step; got {steps}")
    if model.device != "cpu":
        raise ValueError(f"NRT allocations are counted on the CPU; the model is on "
                         f"{model.device!r}")
    n = model.as_arrays(X).shape[0]
    batch_size = min(batch_size, n)
    # One warm-up step, one counted step, then `steps`: as many epochs as that can touch.
    epochs = math.ceil((steps + 2) / math.ceil(n / batch_size)) + 1
    plan = plan_for(model, X, y, sample_weight=sample_weight, epochs=epochs,
                    batch_size=batch_size, shuffle=True, schedule=schedule)
    if l2_per_sample:
        plan = dataclasses.replace(plan, objective=dataclasses.replace(plan.objective,
                                                                       l2_per_sample=True))
    run = model.backend.start(plan)

    def train(n):
        def call():
            status, done = run.train_steps(n)
            if status != OK or done != n:
                raise FloatingPointError(f"training stopped after {done} of {n} steps "
                                         f"(status {status}): the count would be partial")
        return call

    # A data-parallel run's thread chooser may split a call into several compiled calls,
    # on one thread or more (each call boxes its arrays once per thread): counted with the
    # thread count fixed, both counts are of one call on the same threads.
    from ..cpu.threads import fixed_threads, most_threads
    try:
        with fixed_threads(most_threads()):
            train(1)()  # compile
            with nrt_statistics():
                one = nrt_allocations(train(1))
                many = nrt_allocations(train(steps))
    finally:
        run.close()
    return (many - one) / (steps - 1)
