"""asv benchmarks of fastmlp, one module per area; see README.md, "Tracking performance".

Under asv (its runner, asv_runner, imports this package; asv 0.6 does not pass its ASV=true
to the benchmark processes) every thread pool is pinned to one thread before numpy or numba
is imported, and the processes the benchmarks start inherit it: a step that runs on one core or two depending on
the neighbours' load, or on a thread count chosen by timing, makes a 2x spread between runs
of the same commit. A value already in the environment wins, so a run can ask for more.
`python -m benchmarks.sklearn_fit` (not under asv) keeps each library's default threads.
"""
import os
import sys

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                    "MKL_NUM_THREADS")

if "asv_runner" in sys.modules or os.environ.get("ASV") == "true":
    for _name in THREAD_VARIABLES:
        os.environ.setdefault(_name, "1")
