"""One fit in this fresh process, for tests/test_fresh_processes.py: prints one JSON line
with a digest of the weights, the kernel path and thread counts the fit ran with, and every
signature any fastmlp dispatcher compiled here (numba's cache misses) or loaded from the
disk cache (its hits), the BLAS library the kernels called by symbol (None: np.dot), and how
often numba refreshed its target context (a compile does; reading machine code back should
not: core/jitcache.LoadingFunctionCache).

    python -m tests.fresh_fit parallel   # 784-256-10-sized steps split in two parts, 2 threads
    python -m tests.fresh_fit small      # a small fit, then predict (the default config)
    python -m tests.fresh_fit inference  # predict and the loss of an untrained model
"""
import hashlib
import json
import sys

import numpy as np


def compile_record():
    from fastmlp.bench.compile import fastmlp_dispatchers
    misses, hits = [], []
    for d in fastmlp_dispatchers():
        name = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
        stats = d.stats
        misses += [f"{name}{sig}" for sig in stats.cache_misses]
        hits += [f"{name}{sig}" for sig in stats.cache_hits]
    return sorted(misses), sorted(hits)


def parallel_fit():
    """A fit whose steps train with cpu/parallel.train_steps on two parts, every call on
    two threads (the chooser's one-thread option taken away)."""
    import fastmlp
    from fastmlp import config
    from fastmlp.cpu import threads
    config.CPU_THREADS = 2
    used = set()
    chooser_init, timed = threads.ThreadChooser.__init__, threads.ThreadChooser._timed

    def only_most(self, most, *args, **kwargs):
        chooser_init(self, most, *args, **kwargs)
        self.options = (most,)

    def record(self, call, n_threads, units):
        used.add(n_threads)
        return timed(self, call, n_threads, units)

    threads.ThreadChooser.__init__, threads.ThreadChooser._timed = only_most, record
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1024, 784)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    model = fastmlp.MLP(784, [(256, "relu"), (10, "softmax")], optimizer=fastmlp.Adam(),
                        dtype=np.float32, seed=3)
    runs = []
    start = model.backend.start
    model.backend.start = lambda plan: runs.append(start(plan)) or runs[-1]
    model.fit(X, y, epochs=2, batch_size=128, progress=False)
    return {"path": runs[0].path(), "threads": sorted(used),
            "weights": weights_digest(model)}


def small_fit():
    """What a first script does: a small fit (the default config), then predict."""
    import fastmlp
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 10))
    y = (X[:, 0] > 0).astype(np.int64)
    model = fastmlp.MLP(10, [(16, "relu"), (2, "softmax")], seed=0)
    model.fit(X, y, epochs=2, batch_size=32, progress=False)
    model.predict(X)
    return {"weights": weights_digest(model)}


def first_inference():
    """A model's first inference, nothing trained: predict on many rows (split over parts
    where this process may run two threads) and on a few, and the loss."""
    import fastmlp
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4096, 64)).astype(np.float32)
    y = rng.integers(0, 10, 4096)
    model = fastmlp.MLP(64, [(64, "relu"), (10, "softmax")], dtype=np.float32, seed=1)
    model.predict(X)
    model.predict(X[:5])
    model.loss(X[:100], y[:100])
    return {"weights": weights_digest(model)}


def weights_digest(model):
    digest = hashlib.sha256()
    for w, b in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
        digest.update(np.ascontiguousarray(b).tobytes())
    return digest.hexdigest()


def count_refreshes():
    """Count numba's refreshes of its target context from here on (a list of one count)."""
    from numba.core import base
    calls, refresh = [0], base.BaseContext.refresh

    def counting(self):
        calls[0] += 1
        return refresh(self)
    base.BaseContext.refresh = counting
    return calls


if __name__ == "__main__":
    refreshes = count_refreshes()
    out = {"parallel": parallel_fit, "small": small_fit, "inference": first_inference}[
        sys.argv[1]]()
    out["compiled"], out["loaded"] = compile_record()
    from fastmlp.core import blas
    out["blas"] = blas.stamp()
    out["refreshes"] = refreshes[0]
    print(json.dumps(out))
