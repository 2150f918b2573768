"""Cold start: a fresh interpreter that imports fastmlp and trains one step, kernels cached."""
import os

from .common import WarmKernels

IMPORT = "import fastmlp"

FIRST_STEP = """
import fastmlp
from fastmlp.bench.workloads import WORKLOADS
w = WORKLOADS["xor"]
X, y = w.make_data()
w.build(seed=0).fit(X, y, epochs=1, batch_size=w.batch_size, progress=False)
"""


def with_this_fastmlp(code):
    """code, made to import the fastmlp this process imported: the timed interpreter does
    not inherit sys.path, and asv may have put a checkout first on it (ASV_PYTHONPATH)."""
    import fastmlp
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    return f"import sys; sys.path.insert(0, {root!r})\n{code}"


class ColdStart(WarmKernels):
    """Seconds the code takes in a new Python process (asv times it there with timeit, so the
    interpreter's own start-up is excluded). Numba's on-disk cache is warm (setup_cache, then
    setup), so this measures importing and loading kernels, not compiling them."""
    repeat = (3, 5, 30.0)

    def setup(self):
        exec(FIRST_STEP, {})  # make sure this fastmlp's kernel cache is populated

    def timeraw_import(self):
        return with_this_fastmlp(IMPORT)

    def timeraw_import_and_first_step(self):
        return with_this_fastmlp(FIRST_STEP)


#: A fresh install's first fit: Numba's cache and fastmlp's generated-kernel cache both point
#: at a new empty directory, set before numba is imported (it reads NUMBA_CACHE_DIR then).
COLD_FIT = """
import os, tempfile
cache = tempfile.mkdtemp(prefix="fastmlp-cold-")
os.environ["NUMBA_CACHE_DIR"] = os.environ["FASTMLP_CACHE_DIR"] = cache
import numpy as np
import fastmlp
X = np.random.default_rng(0).random((256, {n_inputs}))
y = np.random.default_rng(1).integers(0, 2, 256)
model = fastmlp.MLP({n_inputs}, {layers!r}, optimizer=fastmlp.Adam(lr=1e-3), seed=0)
model.fit(X, y, epochs=1, batch_size=32, progress=False)
model.evaluate(X, y)
import shutil
shutil.rmtree(cache, ignore_errors=True)
"""

#: "generic": the README's digits network, trained by the generic kernels (too many weights
#: for a generated one); "generated": a network small enough for its own generated kernel.
COLD_NETWORKS = {"generic": (64, [(128, "relu"), (10, "softmax")]),
                 "generated": (2, [(8, "relu"), (8, "relu"), (1, "sigmoid")])}


class FirstRun:
    """Seconds of a fresh process's first fit and evaluate with every cache empty: what a new
    install (or a new small architecture) pays in compilation before training starts."""
    params = list(COLD_NETWORKS)
    param_names = ["network"]
    # Each sample compiles from scratch (tens of seconds on a small machine): few samples.
    repeat = (1, 3, 60.0)
    number = 1
    timeout = 900

    def timeraw_cold_fit(self, network):
        n_inputs, layers = COLD_NETWORKS[network]
        return with_this_fastmlp(COLD_FIT.format(n_inputs=n_inputs, layers=layers))
