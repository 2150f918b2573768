"""CUDA tests: tiny launch shapes, so that every multi-block, multi-tile and multi-depth-step
path of the kernels runs on a few rows, and the simulator (one Python thread per CUDA
thread) stays fast. tests/conftest.py turns the simulator on when there is no GPU."""
import sys

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


@pytest.fixture(scope="session", autouse=True)
def quick_thread_switches():
    """The simulator runs each CUDA thread as a Python thread and polls them at every
    syncthreads; with Python's default 5 ms switch interval most of the time goes to waiting
    for the GIL. A short interval makes launches several times faster."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)
