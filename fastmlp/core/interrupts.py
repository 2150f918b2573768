"""Ctrl-C recorded, not raised, while ranks train together (cpu/mpi.py).

A KeyboardInterrupt raised on one rank between two collectives leaves the others waiting in
the next one for ever (and the interrupted rank waiting for them in MPI_Finalize). So while
a data-parallel fit runs, SIGINT only counts presses; the run reads `pressed` before each
call's first collective, and every rank stops at the same step when any rank was pressed,
as they do for a NaN loss. mpiexec forwards the terminal's Ctrl-C to every rank; pressing it
again makes mpiexec itself abort the job.

`quiet_mpi_exit` covers the last moment of a rank: mpi4py calls MPI_Finalize after Python has
put SIGINT back to its default action, and a rank that finished first waits there for the
others (rank 0 may still be saving the model). A Ctrl-C then killed it, and mpiexec killed
every other rank in turn, the one saving included: the trained model was lost.
"""
import atexit
import contextlib
import signal
import threading

_active = []
_quiet_exit = []


class DeferredInterrupts:
    """A context that counts SIGINTs instead of raising them (in the main thread only; a
    fit run from another thread gets no signals there anyway). Nested uses share the
    outermost one's count."""

    def __init__(self):
        self.pressed = 0
        self._previous = None

    def __enter__(self):
        if _active:
            return _active[0]
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._count)
        _active.append(self)
        return self

    def _count(self, signum, frame):
        self.pressed += 1

    #: What the CLI's Interrupts.deferred notes: nothing here, where every press is deferred.
    pending = False

    def deferred(self):
        """Presses are deferred already (the CLI's Interrupts has the same method)."""
        return contextlib.nullcontext(self)

    def __exit__(self, *exc):
        if _active and _active[0] is self:
            _active.pop()
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None
        return False


def pressed():
    """SIGINTs counted by the active DeferredInterrupts (0 when none is active)."""
    return _active[0].pressed if _active else 0


def quiet_mpi_exit():
    """Ignore SIGINT from this process's exit on, so that MPI_Finalize, which runs after
    Python's own signal handling has ended, cannot be interrupted (the module's docstring
    says why). Once per process; a second Ctrl-C still makes mpiexec abort the job."""
    if not _quiet_exit:
        _quiet_exit.append(True)
        # SIG_IGN stays through Python's finalisation (only Python handlers are reset)
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)
