"""Every JIT flag of the package, in one place.

`cache=True` writes compiled kernels next to the sources (or to NUMBA_CACHE_DIR), so a new
process reuses them instead of compiling again.

FASTMATH grants LLVM only reassociation (so sums and dot products vectorise) and contraction
into FMAs. It never grants nnan/ninf: the kernels rely on NaN and inf propagating to the
non-finite-loss check.

ERROR_MODEL "numpy" makes a float division by zero give inf/NaN, as in numpy, instead of
raising ZeroDivisionError; the check Python's rule needs sits in every division and stops
LLVM from vectorising the loop around it.
"""
import functools

import numba

CACHE = True
FASTMATH = frozenset({"reassoc", "contract"})
NOGIL = True
ERROR_MODEL = "numpy"

#: A GEMM goes to BLAS (np.dot with out=) when its wider side (n_in or n_out) reaches
#: BLAS_MIN_WIDTH and it has BLAS_MIN_MACS multiply-adds; below that, BLAS call overhead
#: dominates and the hand-written loops win. Measured (CPU time per step, one thread): the x2
#: workload (100 rows, widths 1-8-8-1) takes 26 us with loops below 32 wide / 32k MACs and
#: 13 us with these thresholds; xor (4 rows, widths 2-2-1) is fastest with loops (2.6 us vs
#: 3.4 us all-BLAS).
BLAS_MIN_WIDTH = 8
BLAS_MIN_MACS = 512

#: Rows the workspace holds at least, so that inference runs in chunks worth a GEMM even for
#: models trained with tiny batches.
MIN_WORKSPACE_ROWS = 256

#: With progress=True, `fit` returns to Python about this often (seconds) to update the bar
#: and let Ctrl-C through.
PROGRESS_INTERVAL = 0.1

jit = functools.partial(numba.njit, cache=CACHE, fastmath=set(FASTMATH), nogil=NOGIL,
                        error_model=ERROR_MODEL)
