"""Every JIT flag of the package, in one place.

`cache=True` writes compiled kernels next to the sources (or to NUMBA_CACHE_DIR), so a new
process reuses them instead of compiling again. `fastmath` stays off: it would let LLVM assume
no NaN/inf, which breaks the non-finite-loss check and the PyTorch parity tolerances.
"""
import functools

import numba

CACHE = True
FASTMATH = False
NOGIL = True

#: A GEMM goes to BLAS (np.dot with out=) only when both of its "wide" dimensions reach this;
#: below it, BLAS call overhead dominates and the hand-written loops win.
BLAS_MIN_WIDTH = 32

#: Rows the workspace holds at least, so that inference runs in chunks worth a GEMM even for
#: models trained with tiny batches.
MIN_WORKSPACE_ROWS = 256

#: With progress=True, `fit` returns to Python about this often (seconds) to update the bar
#: and let Ctrl-C through.
PROGRESS_INTERVAL = 0.1

jit = functools.partial(numba.njit, cache=CACHE, fastmath=FASTMATH, nogil=NOGIL)
