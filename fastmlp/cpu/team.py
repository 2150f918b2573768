"""A team of threads that runs one compiled kernel together (cpu/parallel.py's steps).

Each member runs the same `@jit(nogil=True)` kernel, told its index `tid` and the team's size,
and does its share of each phase (parts p = tid, tid + size, ...); the phases of a step are
separated by `barrier`, a counter and a generation number in a shared int64 array updated
with atomic instructions (numba has no CPU atomics, so `_atomic_add`/`_atomic_load`/
`_atomic_store` emit them as LLVM IR). A member waiting at a barrier spins, then yields its
core (sched_yield) so that on a shared host the member it waits for can get one.

Compared with numba's `prange` (a fork and join of its thread pool per parallel region, and
parfor lowering at compile time), a team crosses a phase for the price of a barrier, is a
plain `@jit` function to compile, and needs no threading layer: the members are Python
threads, started once per process and restarted after a fork, each inside the kernel with
the GIL released.

Layout of the shared int64 array (`new_sync`): the counter, the generation, the abort flag
and the next unclaimed unit of work (`claim`) on cache lines of their own, then slots for
values one member hands the others (SLOTS onward).
"""
import os
import sys
import threading

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..config import jit

COUNT, GENERATION, ABORT, NEXT = 0, 8, 16, 24  # 64 bytes apart: no false sharing
SLOTS = 32
SYNC_SIZE = SLOTS + 8
#: Loads of the generation a waiting member spins through before it starts to yield.
SPINS = 2000
#: The status a member returns when another member failed (its exception is re-raised).
ABORTED = -1


def _pointer(context, builder, array_type, array, index_type, index):
    array = context.make_array(array_type)(context, builder, array)
    index = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


def _int64_array(ary):
    return isinstance(ary, types.Array) and ary.dtype == types.int64 and ary.ndim == 1


@intrinsic
def _atomic_add(typingctx, ary, index, value):
    """ary[index] += value, atomically; returns the value before."""
    if not (_int64_array(ary) and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        add = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, add, "seq_cst")
    return types.int64(ary, index, value), codegen


@intrinsic
def _atomic_load(typingctx, ary, index):
    """ary[index], read with acquire ordering (never cached in a register)."""
    if not (_int64_array(ary) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(ary, index), codegen


@intrinsic
def _atomic_store(typingctx, ary, index, value):
    """ary[index] = value with release ordering."""
    if not (_int64_array(ary) and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        builder.store_atomic(context.cast(builder, args[2], sig.args[2], types.int64), ptr,
                             "release", 8)
        return context.get_dummy_value()
    return types.none(ary, index, value), codegen


if sys.platform == "win32":
    @jit
    def _yield():
        """Windows has no sched_yield: keep spinning."""
        return 0
else:
    _yield = types.ExternalFunction("sched_yield", types.int32())


@jit(inline="always")
def barrier(sync, size):
    """Wait until all `size` members have arrived; False when a member aborted (its
    exception is on its way to Python), in which case the kernel should return at once."""
    if size == 1:
        return True
    generation = _atomic_load(sync, GENERATION)
    if _atomic_add(sync, COUNT, 1) == size - 1:  # the last to arrive lets the others go
        _atomic_store(sync, COUNT, 0)
        _atomic_add(sync, GENERATION, 1)
        return _atomic_load(sync, ABORT) == 0
    spins = 0
    while _atomic_load(sync, GENERATION) == generation:
        if _atomic_load(sync, ABORT) != 0:
            return False
        spins += 1
        if spins > SPINS:
            _yield()
    return True


@jit(inline="always")
def raise_flag(sync, slot):
    """sync[slot] = 1, atomically: a flag any member may raise, read after the run."""
    _atomic_store(sync, slot, 1)


@jit(inline="always")
def claim(sync):
    """The next unit of work (0, 1, 2, ... within a run) no member has taken, for work whose
    units any member may do in any order: a member on a slower core simply takes fewer."""
    return _atomic_add(sync, NEXT, 1)


def new_sync():
    """A team's shared int64 array (barrier state and hand-over slots)."""
    return np.zeros(SYNC_SIZE, np.int64)


class _Members:
    """The process's team members beyond the calling thread, started on first use and
    kept; a forked child starts its own (threads do not survive a fork)."""

    def __init__(self):
        self.threads = []
        self.lock = threading.Lock()

    def ensure(self, count):
        with self.lock:
            while len(self.threads) < count:
                self.threads.append(_Member(len(self.threads) + 1))
        return self.threads[:count]


class _Member:
    """One thread that runs the tasks it is handed, one at a time."""

    def __init__(self, tid):
        self.ready = threading.Event()
        self.done = threading.Event()
        self.task = None
        self.error = None
        self.thread = threading.Thread(target=self._loop, name=f"fastmlp-team-{tid}",
                                       daemon=True)
        self.thread.start()

    def submit(self, task):
        self.task, self.error = task, None
        self.done.clear()
        self.ready.set()

    def join(self, sync):
        """Wait until the task has returned, through Ctrl-C too (a member still at work
        when its buffers go to the next call would write into them): a KeyboardInterrupt
        meanwhile sets the team's ABORT, so that members waiting at a barrier return, and
        is given back after the task's end. Returns (the task's exception or None, the
        interrupt or None)."""
        interrupt = None
        while not self.done.is_set():
            try:
                self.done.wait()
            except KeyboardInterrupt as error:
                interrupt = error
                sync[ABORT] = 1
        error, self.error = self.error, None
        return error, interrupt

    def _loop(self):
        while True:
            self.ready.wait()
            self.ready.clear()
            task, self.task = self.task, None
            try:
                task()
            except BaseException as error:  # re-raised in the caller's thread
                self.error = error
            self.done.set()


_members = _Members()
# One team run at a time: the members are shared by every fit of the process.
_busy = threading.Lock()


def _after_fork_in_child():
    global _members, _busy
    _members = _Members()
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run(kernel, size, args, sync):
    """kernel(tid, size, *args, sync) on `size` threads (this one is tid 0); returns tid 0's
    result. An exception in any member aborts the others at their next barrier and is
    raised here, once every member has returned (Ctrl-C too). While another thread's call
    holds the team, this one runs alone."""
    if size > 1 and _busy.acquire(blocking=False):
        try:
            _reset(sync)
            return _run_members(kernel, size, args, sync)
        finally:
            _busy.release()
    # One member, or another thread's fit has the team: every part runs here, which gives
    # the same result bit for bit (the parts, not the members, fix the arithmetic).
    _reset(sync)
    return kernel(0, 1, *args, sync)


def _reset(sync):
    sync[COUNT] = 0
    sync[ABORT] = 0
    sync[NEXT] = 0


def _run_members(kernel, size, args, sync):
    others = _members.ensure(size - 1)

    def task(tid):
        def call():
            try:
                kernel(tid, size, *args, sync)
            except BaseException:
                sync[ABORT] = 1
                raise
        return call

    started = []
    returned = False
    try:
        # Inside the try: a Ctrl-C between two hand-overs must abort the members already
        # started, or they would wait at their first barrier for this thread for ever.
        for tid, member in enumerate(others, start=1):
            member.submit(task(tid))
            started.append(member)
        result = kernel(0, size, *args, sync)
        returned = True
    except BaseException:
        sync[ABORT] = 1
        raise
    finally:
        errors = []
        for member in started:
            error, interrupt = member.join(sync)
            errors += [e for e in (interrupt, error) if e is not None]
        if errors and returned:  # else this thread's own exception is on its way
            raise errors[0]
    return result
