import os

import numpy as np
import pytest


def _gpu_present():
    # Decided without importing numba (fastmlp.cuda.device.gpu_present does the same): the
    # simulator switch is read when numba is first imported, before any test module loads.
    if os.path.exists("/dev/nvidia0"):
        return True
    return any(os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep) if d)


# Without a GPU, tests/cuda/ runs the CUDA kernels in Numba's simulator. The switch only
# affects numba.cuda, so the CPU tests are unchanged by it.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


# Kernels shipped in this checkout (fastmlp/_kernels: `python -m fastmlp.cpu.ship
# fastmlp/_kernels`, or .ci/run's copy of the installed package's) load where they apply,
# as for a user; the tests of compiling and caching turn them off for their processes
# (FASTMLP_SHIPPED_KERNELS=0), and tests/cpu/test_ship.py builds its own.


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def generic_kernel(monkeypatch):
    """Train with cpu/steps.train_steps even where a generated kernel would be used
    (cpu/specialize.py), for tests that stand in for or wrap that function."""
    from fastmlp import config
    monkeypatch.setattr(config, "SPECIALIZE", False)


@pytest.fixture(autouse=True)
def generated_kernels_where_eligible(monkeypatch):
    """Small networks train with their generated kernels wherever eligible (config.SPECIALIZE
    True), as before the "auto" rule, so that the suite keeps running those kernels in every
    fit; tests/cpu/test_specialize.py tests the "auto" rule users get (and generic_kernel
    turns them off)."""
    from fastmlp import config
    monkeypatch.setattr(config, "SPECIALIZE", True)


@pytest.fixture(autouse=True)
def sigint_handler_restored():
    """Every test leaves SIGINT's handler as it found it: a run or a CLI command that keeps
    its own handler after returning would swallow the user's next Ctrl-C (an MpiRun counts
    presses until it closes), and the leak would fail some later, unrelated test instead."""
    import signal
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test left SIGINT's handler set to {after!r} (was {before!r}): "
                    f"close the run or command that installed it")
