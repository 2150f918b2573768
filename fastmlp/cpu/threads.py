"""Threads for the data-parallel kernels of cpu/parallel.py: whether they may run, how many
parts a step is split into, and how many threads run those parts.

The parts are fixed for a fit (the results depend on them, in the last bits); the threads are
not: running two parts on one thread computes exactly what two threads compute, so the count
can follow the machine. It is measured, not assumed. On a host whose cores are shared, a
thread that waits for its partner at the end of every parallel region can make two threads
ten times slower than one while another process holds the other core (docs/tuning.md),
and the next second the partner is back. ThreadChooser times each option for a few steps, runs the rest
of the call with the faster, and times the other again every THREAD_REPROBE_SECONDS.
"""
import os
import time

import numba
import numpy as np

from .. import config
from ..core.status import OK

_forked = False  # set in a child process by os.fork (see available)


def _after_fork_in_child():
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


@config.parallel_jit
def _touch(a):
    for i in numba.prange(a.shape[0]):
        a[i] += 1.0


def _threading_layer():
    """The threading layer numba's parallel kernels run on, started if it is not yet."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process yet
        _touch(np.zeros(2))
        return numba.threading_layer()


def available():
    """Whether the parallel kernels may run in this process.

    Not in a process forked from one whose GNU OpenMP pool was running: numba aborts such a
    child at its first parallel region (libgomp is not fork-safe), so a forked child trains
    with the serial kernels. Not on the `workqueue` layer either, the fallback when neither
    TBB nor OpenMP is installed: a region costs it ~100 us against ~1.5 us with OpenMP, and
    it cannot run two kernels from two threads at once."""
    if most_threads() < 2:
        return False
    if _forked:
        try:
            layer = numba.threading_layer()
        except ValueError:  # the pool never started in the parent: safe to start here
            layer = None
        if layer == "omp":
            return False
    return _threading_layer() in ("omp", "tbb")


def most_threads():
    """The threads the parallel kernels may use: config.CPU_THREADS, or numba's count (one
    per core, NUMBA_NUM_THREADS) when it is None."""
    limit = config.CPU_THREADS
    return numba.config.NUMBA_NUM_THREADS if limit is None else max(1, min(
        int(limit), numba.config.NUMBA_NUM_THREADS))


def parts_for(m, macs_per_row):
    """Parts to split a step of m rows into (1: train with the serial kernels): one per
    thread when the step has config.PARALLEL_MIN_MACS multiply-adds or more and each part
    keeps config.PARALLEL_MIN_PART_ROWS rows."""
    if m * macs_per_row < config.PARALLEL_MIN_MACS:
        return 1
    parts = min(most_threads(), m // config.PARALLEL_MIN_PART_ROWS)
    if parts < 2 or not available():
        return 1
    return parts


class ThreadChooser:
    """Runs a parallel kernel's units of work (training steps, chunks of rows) with one
    thread or with `most`, whichever measured faster per unit recently."""

    def __init__(self, most, probe_units=None, reprobe_seconds=None):
        self.options = (most, 1) if most > 1 else (1,)
        self.probe_units = config.THREAD_PROBE_STEPS if probe_units is None else probe_units
        self.reprobe_seconds = (config.THREAD_REPROBE_SECONDS if reprobe_seconds is None
                                else reprobe_seconds)
        self.per_unit = dict.fromkeys(self.options, None)
        self.measured_at = dict.fromkeys(self.options, -np.inf)

    def best(self):
        """The option with the lowest measured time per unit (unmeasured ones last)."""
        return min(self.options, key=lambda k: np.inf if self.per_unit[k] is None
                   else self.per_unit[k])

    def run(self, call, units):
        """call(threads, units) -> (status, units done): run `units` units, first probing
        each option not timed in the last reprobe_seconds. Stops at the first call that
        returns a status other than OK or does fewer units than asked."""
        if units == 0:  # a call that only compiles (or loads) the kernel: nothing to time
            return call(self.best(), 0)
        done = 0
        status = OK
        now = time.perf_counter()
        for threads in self.options:
            if units - done <= 0 or len(self.options) == 1:
                break
            if now - self.measured_at[threads] < self.reprobe_seconds:
                continue
            ask = min(self.probe_units, units - done)
            status, ran = self._timed(call, threads, ask)
            done += ran
            if status != OK or ran < ask:
                return status, done
        if units - done > 0:
            status, ran = self._timed(call, self.best(), units - done)
            done += ran
        return status, done

    def _timed(self, call, threads, units):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        start = time.perf_counter()
        try:
            status, ran = call(threads, units)
        finally:
            numba.set_num_threads(previous)
        end = time.perf_counter()
        if ran > 0:
            self.per_unit[threads] = (end - start) / ran
            self.measured_at[threads] = end
        return status, ran
