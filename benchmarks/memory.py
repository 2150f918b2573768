"""Memory: a fit's own peak resident memory above the floor that importing fastmlp sets,
and that floor; each measured in a new interpreter, where nothing else has run."""
import json
import os

from .common import BATCHES_PER_EPOCH, COMPILE_TIMEOUT, PIN_SETTINGS_CODE, SUITE_VERSION, \
    WORKLOAD_NAMES, WORKLOADS, run_python, warm_model

#: The child: imports and the data; then the kernel's peak-RSS mark is reset to the current
#: resident size (Linux: 5 into /proc/self/clear_refs), so a transient peak of the imports
#: cannot hide the fit's memory under it; then the model and one epoch of fit
#: (BATCHES_PER_EPOCH steps), and the peak (VmHWM) is read. Kernels load from Numba's disk
#: cache (setup put them there), so no compiler memory is counted.
FIT_PEAK = """
import json
import numpy as np
import fastmlp
rng = np.random.default_rng(0)
X = rng.random(({rows}, {n_inputs}), dtype=np.float32)
y = {targets}
{pin_settings}
optimizer = fastmlp.{optimizer}(lr={lr!r})

def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
floor = status_kib("VmRSS")
model = fastmlp.MLP({n_inputs}, {layers!r}, loss={loss!r}, optimizer=optimizer, seed=0)
model.fit(X, y, epochs=1, batch_size={batch_size}, progress=False)
print(json.dumps([floor, status_kib("VmHWM")]))
"""

#: Targets of the right kind for each loss (their values do not change the memory).
TARGETS = {"binary_cross_entropy": "rng.integers(0, 2, len(X))",
           "cross_entropy": "rng.integers(0, 10, len(X))", "mse": "rng.random(len(X))"}

IMPORT_PEAK = """
import resource
import fastmlp
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def fit_peak_code(w):
    """FIT_PEAK for workload w (the child cannot import this package: asv imports it by a
    path of its own, and the directory above it may hold another fastmlp)."""
    return FIT_PEAK.format(
        rows=BATCHES_PER_EPOCH * w.batch_size, n_inputs=w.n_inputs, targets=TARGETS[w.loss],
        pin_settings=PIN_SETTINGS_CODE, optimizer={"sgd": "SGD", "adam": "Adam"}[w.optimizer],
        lr=w.lr, layers=[tuple(layer) for layer in w.layers], loss=w.loss,
        batch_size=w.batch_size)


class FitMemory:
    """MiB of peak resident memory a fit adds above the process's resident size after
    importing fastmlp and making the data: the model, its buffers, the loaded kernels (one
    epoch, float32, one thread)."""
    params = WORKLOAD_NAMES
    param_names = ["workload"]
    version = SUITE_VERSION
    unit = "MiB"
    timeout = COMPILE_TIMEOUT  # the first setup in a new environment compiles

    def setup(self, workload):
        if not os.path.exists("/proc/self/clear_refs"):
            raise NotImplementedError("the peak above the floor is read from Linux's /proc")
        warm_model(WORKLOADS[workload])  # the kernels into Numba's disk cache

    def track_fit_peak_above_imports(self, workload):
        floor, peak = json.loads(run_python(fit_peak_code(WORKLOADS[workload])))
        return (peak - floor) / 1024


class ImportMemory:
    """MiB of peak resident memory of a new interpreter that imports fastmlp: the floor
    under every fit (numpy, numba and llvmlite, scipy's BLAS, fastmlp's modules)."""
    version = SUITE_VERSION
    unit = "MiB"

    def track_import_peak(self):
        return int(run_python(IMPORT_PEAK)) / 1024
