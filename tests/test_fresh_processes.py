"""What only a fresh process shows: the data-parallel kernel's arithmetic order is fixed
(the same weights, bit for bit, from run to run), a second process that shares the first
one's caches compiles nothing (numba's dispatcher statistics, tests/fresh_fit.py), with the
kernels calling numpy's bundled OpenBLAS by symbol, and a process without that library
compiles its own kernels rather than loading ones that call it."""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from tests.cpu.test_gemm import numpy_bundles_openblas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fresh_fit(mode, **env):
    """tests/fresh_fit.py's JSON record of one fit in a new interpreter."""
    environ = dict(os.environ, **env)
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-m", "tests.fresh_fit", mode], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_threads_give_the_same_weights_in_every_fresh_process():
    runs = [fresh_fit("parallel") for _ in range(3)]
    for run in runs:
        assert run["path"] == "parallel", run["path"]
        assert run["threads"] == [2]  # every call ran both parts at once
    assert len({run["weights"] for run in runs}) == 1, [run["weights"] for run in runs]


@pytest.mark.parametrize("mode", ["small", "parallel"])
def test_a_second_process_sharing_the_caches_compiles_nothing(tmp_path, mode):
    cache = str(tmp_path)
    # Shipped kernels off: the first process compiles, as a checkout's or a new CPU's does.
    first = fresh_fit(mode, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache,
                      FASTMLP_SHIPPED_KERNELS="0")
    second = fresh_fit(mode, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache,
                       FASTMLP_SHIPPED_KERNELS="0")
    # The caches really started empty (whatever the first process loaded, its helper,
    # cpu/ahead.py, compiled meanwhile).
    assert first["compiled"]
    # The helper compiled overloads the training kernel's compile would have compiled.
    from fastmlp.cpu import ahead
    made = set(first["compiled"]) | set(first["loaded"])
    training = {"parallel": "team", "small": "serial"}[mode]
    for kernel, args in ahead.TRAINING[training](np.dtype(np.float32)):
        name = f"{kernel.py_func.__module__}.{kernel.py_func.__qualname__}"
        assert f"{name}{tuple(numba.typeof(a) for a in args)}" in made, name
    assert second["compiled"] == [], second["compiled"]
    assert second["loaded"]
    # nor set numba up for compiling: its context refresh took 0.4-0.6 s of a warm start
    assert first["refreshes"] > 0 and second["refreshes"] == 0, second["refreshes"]
    assert second["weights"] == first["weights"]
    from fastmlp.core import blas
    assert first["blas"] == second["blas"] == json.loads(json.dumps(blas.stamp()))
    if numpy_bundles_openblas():
        assert first["blas"] is not None  # the symbol path is what was cached and loaded


def test_kernels_cached_by_symbol_are_not_loaded_without_the_library(tmp_path):
    """The BLAS choice is in numba's cache stamp (core/jitcache.py): a process with the
    symbol path off, sharing a cache filled with it on, compiles its own kernels rather
    than load ones that call a symbol it has not loaded."""
    cache = str(tmp_path)
    on = fresh_fit("small", NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache)
    # No helper (cpu/ahead.py) beside it: whatever it loads comes from the first process.
    off = fresh_fit("small", NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache,
                    FASTMLP_BLAS_BY_SYMBOL="0", FASTMLP_COMPILE_AHEAD="0")
    assert off["blas"] is None
    if not numpy_bundles_openblas():
        pytest.skip("this numpy bundles no OpenBLAS (not a wheel from PyPI): both processes "
                    "call np.dot, so there is no symbol to leave out")
    assert on["blas"] is not None
    assert off["compiled"] and not off["loaded"], off["loaded"]


def test_a_warm_process_does_not_say_it_is_compiling(tmp_path):
    """The progress bar says "compiling kernels" only while they compile: a process whose
    kernels are in the disk cache loads them, and says nothing of compiling."""
    from fastmlp.fit.loop import COMPILING
    script = ("import numpy as np, fastmlp\n"
              "X = np.random.default_rng(0).standard_normal((64, 3))\n"
              "y = (X[:, 0] > 0).astype(int)\n"
              "fastmlp.MLP(3, [(5, 'tanh'), (2, 'softmax')], seed=0)"
              ".fit(X, y, epochs=2, batch_size=16, progress=True)\n")
    environ = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FASTMLP_CACHE_DIR=str(tmp_path),
                   FASTMLP_SHIPPED_KERNELS="0",  # so that the first process compiles
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH"))
                                              if p))
    runs = [subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ,
                           capture_output=True, text=True, timeout=900) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr[-2000:]
    assert COMPILING in runs[0].stderr  # the first compiled ...
    assert COMPILING not in runs[1].stderr  # ... the second loaded
