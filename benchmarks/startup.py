"""Start-up: a new interpreter importing fastmlp and taking its first steps, with Numba's
cache warm (ColdStart: CPU seconds, the child's included), and a new install's first result
with every cache empty (FirstRun: wall seconds in a new process, asv's timeraw: the
interpreter's own start is left out, the imports are in). FirstRun is the one figure of the
suite that includes compiling."""
import resource
import subprocess
import sys

from .common import COMPILE_TIMEOUT, PIN_SETTINGS_CODE, SUITE_VERSION, WORKLOADS, \
    warm_model, with_this_fastmlp

IMPORT = "import fastmlp"

FIRST_STEP = """
import numpy as np
import fastmlp
{pin_settings}
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
model = fastmlp.MLP(2, [(2, "relu"), (1, "sigmoid")], optimizer=fastmlp.SGD(lr=0.5), seed=0)
model.fit(X, np.array([0, 1, 1, 0]), epochs=1, batch_size=4, progress=False)
""".format(pin_settings=PIN_SETTINGS_CODE)


def cpu_seconds_with_children():
    """CPU seconds of this process and of the children it has waited for: on a shared
    machine a child's wall time moves with the neighbours' load, its CPU time far less."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class ColdStart:
    """CPU seconds of a new interpreter that imports fastmlp, and of one that imports it and
    trains xor's first step (its own start included, ~20 ms), with Numba's disk cache warm
    (setup fills it): importing and loading a kernel, not compiling it."""
    version = SUITE_VERSION
    timer = staticmethod(cpu_seconds_with_children)
    number = 1
    repeat = (5, 10, 20.0)
    timeout = COMPILE_TIMEOUT

    def setup(self):
        warm_model(WORKLOADS["xor"])

    def time_import(self):
        subprocess.run([sys.executable, "-c", with_this_fastmlp(IMPORT)], check=True)

    def time_import_and_first_step(self):
        subprocess.run([sys.executable, "-c", with_this_fastmlp(FIRST_STEP)], check=True)


#: A new install's first result: Numba's cache and fastmlp's generated-kernel cache both
#: point at a new empty directory, set before numba is imported (it reads NUMBA_CACHE_DIR
#: then). The settings line picks the kernel; the threads are the suite's one (every
#: benchmark process has NUMBA_NUM_THREADS=1), so the data-parallel kernels, which a fit
#: this size compiles too on a machine of several cores, are not in the figure.
COLD_FIT = """
import os, shutil, tempfile
cache = tempfile.mkdtemp(prefix="fastmlp-cold-")
os.environ["NUMBA_CACHE_DIR"] = os.environ["FASTMLP_CACHE_DIR"] = cache
try:
    import numpy as np
    import fastmlp
    from fastmlp import config
    if hasattr(config, "SPECIALIZE"):
        config.SPECIALIZE = {specialize}
    rng = np.random.default_rng(0)
    X = rng.random(({rows}, {n_inputs}), dtype=np.float32)
    y = rng.integers(0, {classes}, {rows})
    model = fastmlp.MLP({n_inputs}, {layers!r}, optimizer=fastmlp.Adam(lr=1e-3), seed=0)
    model.fit(X, y, epochs=1, batch_size={batch_size}, progress=False)
    model.predict(X)
finally:
    shutil.rmtree(cache, ignore_errors=True)
"""

#: "generic": the Fashion-MNIST network (784 -> 256 relu -> 10 softmax, Adam, batches of
#: 128) on 4,096 rows, trained by the generic kernel, as every network of its size is.
#: "generated": a small network with the kernel generated for its architecture forced
#: (config.SPECIALIZE = True): the compile that a long fit of a new small network pays.
#: (Under SPECIALIZE's default "auto" a one-epoch fit takes the generic kernel, so a small
#: network's first fit compiled exactly what the large one's did: the two figures were the
#: same.)
COLD_NETWORKS = {
    "generic": dict(n_inputs=784, layers=[(256, "relu"), (10, "softmax")], classes=10,
                    rows=4096, batch_size=128, specialize=False),
    "generated": dict(n_inputs=2, layers=[(8, "relu"), (8, "relu"), (1, "sigmoid")],
                      classes=2, rows=256, batch_size=32, specialize=True),
}


class FirstRun:
    """Seconds of a new process's imports, first fit (one epoch) and predict with every
    cache empty: what a new install (or a new small architecture) waits for its first
    result, compilation included."""
    params = list(COLD_NETWORKS)
    param_names = ["kernel"]
    version = SUITE_VERSION
    # Each sample compiles from scratch (tens of seconds on a small machine): two samples in
    # one process, and no warm-up call (it would be one more cold compile).
    repeat = (2, 2, 300.0)
    rounds = 1
    warmup_time = 0
    number = 1
    timeout = COMPILE_TIMEOUT

    def timeraw_cold_fit(self, kernel):
        return with_this_fastmlp(COLD_FIT.format(**COLD_NETWORKS[kernel]))


#: The scikit-learn drop-in's first result on a new install: digits, one hidden layer of
#: 100, adam, 20 epochs, every cache empty, then predict (scikit-learn's own estimator on the
#: same takes about a second; sklearn_fit.py times both warm).
COLD_DROP_IN = """
import os, shutil, tempfile, warnings
cache = tempfile.mkdtemp(prefix="fastmlp-cold-")
os.environ["NUMBA_CACHE_DIR"] = os.environ["FASTMLP_CACHE_DIR"] = cache
try:
    from sklearn.datasets import load_digits
    from fastmlp.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 20 epochs: ConvergenceWarning
        model = MLPClassifier((100,), solver="adam", max_iter=20, random_state=0).fit(X, y)
    model.predict(X)
finally:
    shutil.rmtree(cache, ignore_errors=True)
"""


class FirstRunDropIn:
    """Seconds of a new process's imports, first fit and predict of fastmlp.sklearn's
    MLPClassifier on digits with every cache empty (a commit without the drop-in skips)."""
    version = SUITE_VERSION
    repeat = (2, 2, 300.0)
    rounds = 1
    warmup_time = 0
    number = 1
    timeout = COMPILE_TIMEOUT

    def setup(self):
        try:
            import fastmlp.sklearn  # noqa: F401
        except ImportError:
            raise NotImplementedError("this commit has no fastmlp.sklearn")

    def timeraw_cold_fit_digits(self):
        return with_this_fastmlp(COLD_DROP_IN)
