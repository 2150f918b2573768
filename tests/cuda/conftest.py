"""CUDA tests: tiny launch shapes, so that every multi-block, multi-tile and multi-depth-step
path of the kernels runs on a few rows, and the simulator (one Python thread per CUDA
thread) stays fast. tests/conftest.py turns the simulator on when there is no GPU."""
import sys
import threading

import numpy as np
import pytest

from fastmlp import config

TINY = dict(
    CUDA_TILE_ROWS=4, CUDA_TILE_COLS=4, CUDA_TILE_DEPTH=2,  # 2x2 micro-tiles: 4 threads
    CUDA_THREAD_ROWS=2, CUDA_THREAD_COLS=2,
    CUDA_THREADS=4,                # row and elementwise kernels: several blocks for 5+ rows
    CUDA_OPTIMIZER_BLOCKS=3,       # grid-stride loop wraps around
    CUDA_FUSED_MAX_WIDTH=8,        # the test networks are narrow enough for the fused path
    CUDA_FUSED_ROWS=2,             # ... and a batch spans several of its blocks
    CUDA_FUSED_THREADS=4,
)


@pytest.fixture(autouse=True)
def tiny_launches(monkeypatch):
    for name, value in TINY.items():
        monkeypatch.setattr(config, name, value)


def _thread_safe_shared_arrays():
    """The simulator finds a block's shared array by the (file, line) that declares it, with
    an unlocked check-then-set: two threads declaring it at once can get different arrays,
    and the block then computes with memory that is not shared. Declare under a lock (and
    find the caller without traceback.extract_stack, which is slow)."""
    from fastmlp.cuda.device import simulator_enabled
    if not simulator_enabled():
        return None
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    original = FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory: not used here
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    FakeCUDAShared.array = array
    return original


@pytest.fixture(scope="session", autouse=True)
def simulator_settings():
    """Shared arrays made thread-safe (above), and a short GIL switch interval: the
    simulator polls its threads at every syncthreads, and with Python's default 5 ms
    interval most of a launch is spent waiting for the GIL."""
    original = _thread_safe_shared_arrays()
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)
    if original is not None:
        from numba.cuda.simulator.kernelapi import FakeCUDAShared
        FakeCUDAShared.array = original
