"""What the benchmark modules share: the workloads, their data and models, the settings.

asv runs this directory's benchmarks against every commit it is asked about, so they reach
fastmlp only through its long-standing public API (fastmlp.MLP, fastmlp.SGD/Adam, fit,
forward, predict, evaluate, fastmlp.sklearn, fastmlp.config attributes behind hasattr) and
keep their own copy of the workload table: internal modules move between commits.

Every benchmark carries an explicit `version`: asv otherwise versions a benchmark by the
source of its code and setup, so a refactor of these helpers would drop the stored history.
Bump a benchmark's version only when what it measures changes.
"""
import importlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

#: What the training, inference and memory figures measure: this is their asv version.
#: Bump it when a workload, a step count or the settings below change.
SUITE_VERSION = "2"


@dataclass(frozen=True)
class Workload:
    """One row of the design's benchmark table (float32): architecture, loss, optimizer,
    learning rate, batch size, and the training steps one timed call runs."""
    name: str
    n_inputs: int
    layers: tuple        # ((size, activation), ...)
    loss: str
    optimizer: str       # "sgd" or "adam"
    lr: float
    batch_size: int
    steps: int           # per timed fit: 0.1-0.5 s of one quiet core, so fit's edge is <1 %


WORKLOADS = {w.name: w for w in [
    Workload("xor", 2, ((2, "relu"), (1, "sigmoid")), "binary_cross_entropy", "sgd", 0.5, 4,
             steps=131072),
    Workload("x2", 1, ((8, "relu"), (8, "relu"), (1, "identity")), "mse", "adam", 0.1, 100,
             steps=32768),
    Workload("mnist-small", 784, ((128, "sigmoid"), (10, "softmax")), "cross_entropy",
             "sgd", 0.1, 128, steps=512),
    Workload("mnist-wide", 784, ((1024, "relu"), (1024, "relu"), (10, "softmax")),
             "cross_entropy", "sgd", 0.05, 256, steps=16),
]}
WORKLOAD_NAMES = list(WORKLOADS)

#: Batches in the training data: an epoch is this many steps, so an epoch's bookkeeping in
#: fit is spread over as many steps for every workload.
BATCHES_PER_EPOCH = 8

#: Seconds a benchmark may take when its setup compiles every kernel it needs (a cold Numba
#: cache in a new asv environment), with room for a slow, shared machine.
COMPILE_TIMEOUT = 900


def pin_settings():
    """One thread for every BLAS and OpenMP library already loaded: asv's runner imports
    numpy (through pympler) before benchmarks/__init__.py sets OPENBLAS_NUM_THREADS, which
    then reaches only the libraries loaded later (scipy's OpenBLAS, which numba's np.dot
    calls, loaded here first) and the processes the benchmarks start.

    And fastmlp's own settings that would otherwise make one commit's figures vary: the
    data-parallel kernels' threads (their count is chosen by timing, per process) and the
    generated kernels for small networks, which the "auto" rule uses or not depending on
    what earlier processes left in the disk cache. Attributes a commit lacks are skipped."""
    importlib.import_module("scipy.linalg.cython_blas")  # loads scipy's OpenBLAS
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1)

    from fastmlp import config
    if hasattr(config, "CPU_THREADS"):
        config.CPU_THREADS = 1
    if hasattr(config, "SPECIALIZE"):
        config.SPECIALIZE = False  # the generic kernel: what every large network trains with


#: The same settings as source, for the fresh interpreters that the timeraw and memory
#: benchmarks start.
PIN_SETTINGS_CODE = """
from fastmlp import config as _config
if hasattr(_config, "CPU_THREADS"):
    _config.CPU_THREADS = 1
if hasattr(_config, "SPECIALIZE"):
    _config.SPECIALIZE = False
"""


def make_data(workload, rows=None, seed=0):
    """(X float32, y): synthetic rows of the workload's shape (default BATCHES_PER_EPOCH
    batches). xor repeats its four points; x2 is y = x^2 plus noise; the MNIST-shaped ones
    are pixels in [0, 1) with 10 random classes."""
    n = rows or BATCHES_PER_EPOCH * workload.batch_size
    rng = np.random.default_rng(seed)
    if workload.name == "xor":
        X = np.resize(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32), (n, 2))
        return X, np.resize(np.array([0, 1, 1, 0]), n)
    if workload.name == "x2":
        x = 5 * rng.standard_normal((n, 1))
        return x.astype(np.float32), x[:, 0] ** 2 + rng.standard_normal(n)
    k = workload.layers[-1][0]
    return rng.random((n, workload.n_inputs), dtype=np.float32), rng.integers(0, k, n)


def build(workload, seed=0):
    """The workload's float32 model on the CPU."""
    import fastmlp
    optimizer = (fastmlp.SGD(lr=workload.lr) if workload.optimizer == "sgd"
                 else fastmlp.Adam(lr=workload.lr))
    return fastmlp.MLP(workload.n_inputs, [tuple(layer) for layer in workload.layers],
                       loss=workload.loss, optimizer=optimizer, seed=seed)


def warm_model(workload):
    """A fresh model with its training kernel loaded (compiled into Numba's disk cache on
    the first run in an environment): one fit of one batch."""
    pin_settings()
    model = build(workload)
    X, y = make_data(workload, rows=workload.batch_size, seed=1)
    model.fit(X, y, epochs=1, batch_size=workload.batch_size, progress=False)
    return model


#: best_of's samples: at most this many, and no more once this many CPU seconds are spent.
BEST_OF_SAMPLES, BEST_OF_SECONDS = 12, 6.0


def best_of(call):
    """The fewest CPU seconds (this process, one thread) that call() took in up to
    BEST_OF_SAMPLES runs, for the per-step and per-row `track_` figures. The work is fixed,
    so a neighbour on a shared core only ever adds time: the fastest run is the one it
    disturbed least. It does not help when the host is slow for longer than the runs last
    (README, Tracking performance, has the spreads of both kinds of figure)."""
    best, spent = float("inf"), 0.0
    for _ in range(BEST_OF_SAMPLES):
        start = time.process_time()
        call()
        took = time.process_time() - start
        best, spent = min(best, took), spent + took
        if spent >= BEST_OF_SECONDS:
            break
    return best


def fastmlp_root():
    """The directory that holds the fastmlp this process imported."""
    import fastmlp
    return os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))


def with_this_fastmlp(code):
    """code, made to import the fastmlp this process imported: a new interpreter does not
    inherit sys.path, and asv may have put a checkout first on it (ASV_PYTHONPATH)."""
    return f"import sys; sys.path.insert(0, {fastmlp_root()!r})\n{code}"


def run_python(code, timeout=COMPILE_TIMEOUT):
    """stdout of `code` run by a new interpreter (this process's environment); its stderr
    in the error if it fails."""
    done = subprocess.run([sys.executable, "-c", with_this_fastmlp(code)], text=True,
                          capture_output=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"the child process failed ({done.returncode}):\n{done.stderr}")
    return done.stdout
