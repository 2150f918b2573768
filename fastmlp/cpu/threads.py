"""Threads for the data-parallel kernels of cpu/parallel.py: whether they may run, how many
parts a step is split into, and how many threads run those parts.

The parts are fixed for a fit (the results depend on them, in the last bits); the threads are
not: running two parts on one thread computes exactly what two threads compute, so the count
can follow the machine. It is measured, not assumed. On a host whose cores are shared, a
thread that waits for its partner at the end of every parallel region can make two threads
ten times slower than one while another process holds the other core (docs/tuning.md),
and the next second the partner is back. ThreadChooser runs each option untimed for a few steps
the first time (warm-up), then times each in a few short calls and keeps the fastest call's
time per step (a call stalled by a shared core says nothing of the option's speed), runs the
rest of the call with the faster option, and times the other again every
THREAD_REPROBE_SECONDS. A long run whose mean makes its option look slower than another
starts a new probe of every option at the next call rather than a switch: that mean may
hold one stall too.
"""
import contextlib
import time

import numpy as np

from .. import config
from ..core.cores import cores, most_threads  # noqa: F401 (the names callers use)
from ..core.status import OK


def available():
    """Whether the parallel kernels may run in this process: two or more threads allowed.
    (Their team, cpu/team.py, is made of Python threads, restarted in a forked child, so
    neither a threading layer nor fork-safety decides it.)"""
    return most_threads() >= 2


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


_fixed = None  # fixed_threads' count while it is active


@contextlib.contextmanager
def fixed_threads(count):
    """Within the block every ThreadChooser runs min(count, its most) threads, without
    probing: for measurements that need the same compiled calls every time (allocation
    counts), not for training."""
    global _fixed
    previous, _fixed = _fixed, int(count)
    try:
        yield
    finally:
        _fixed = previous


class ThreadChooser:
    """Runs a parallel kernel's units of work (training steps, chunks of rows) with one
    thread or with `most`, whichever measured faster per unit recently."""

    def __init__(self, most, probe_units=None, reprobe_seconds=None, probe_rounds=None):
        self.options = (most, 1) if most > 1 else (1,)
        self.probe_units = config.THREAD_PROBE_STEPS if probe_units is None else probe_units
        self.probe_rounds = max(1, config.THREAD_PROBE_ROUNDS if probe_rounds is None
                                else probe_rounds)
        self.reprobe_seconds = (config.THREAD_REPROBE_SECONDS if reprobe_seconds is None
                                else reprobe_seconds)
        self.per_unit = dict.fromkeys(self.options, None)
        self.measured_at = dict.fromkeys(self.options, -np.inf)
        self.warmed = set()

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
        if _fixed is not None:
            return call(max(1, min(_fixed, self.options[0])), units)
        done = 0
        status = OK
        now = time.perf_counter()
        for threads in self.options:
            if units - done <= 0 or len(self.options) == 1:
                break
            if now - self.measured_at[threads] < self.reprobe_seconds:
                continue
            if threads not in self.warmed:
                # An option's first units pay one-off costs (the first touch of its buffers,
                # waking its threads, caches the other option left cold) that made a first
                # probe of two threads slower than one in about one process in three.
                self.warmed.add(threads)
                ask = min(self.probe_units, units - done)
                status, ran = call(threads, ask)
                done += ran
                if status != OK or ran < ask:
                    return status, done
            fastest = np.inf
            for _ in range(self.probe_rounds):
                ask = min(self.probe_units, units - done)
                if ask <= 0:
                    break
                status, ran = self._timed(call, threads, ask)
                done += ran
                if status != OK or ran < ask:
                    return status, done
                fastest = min(fastest, self.per_unit[threads])
            if fastest < np.inf:
                self.per_unit[threads] = fastest
        if units - done > 0:
            choice = self.best()
            status, ran = self._timed(call, choice, units - done)
            done += ran
            if self.best() != choice:  # confirm by new probes before switching
                self.measured_at = dict.fromkeys(self.options, -np.inf)
        return status, done

    def _timed(self, call, threads, units):
        start = time.perf_counter()
        status, ran = call(threads, units)
        end = time.perf_counter()
        if ran > 0:
            self.per_unit[threads] = (end - start) / ran
            self.measured_at[threads] = end
        return status, ran
