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

# -- CUDA (fastmlp/cuda/) -----------------------------------------------------------------
# Kernels whose shared-memory tiles need compile-time sizes are built per value of the
# settings below (and cached per process), so a test can force tiny tiles and make the
# multi-block and multi-tile paths run on a few rows. Change them before the first CUDA call.

#: On-disk caching of @cuda.jit kernels. numba-cuda can cache closure kernels (its cache key
#: hashes the closed-over constants), but this has not been checked on a GPU yet: off until
#: it is. The simulator ignores it.
CUDA_CACHE = False

#: Tiled GEMM: a block computes a (CUDA_TILE_ROWS, CUDA_TILE_COLS) tile of the output,
#: stepping through the shared dimension CUDA_TILE_DEPTH at a time; each thread computes a
#: (CUDA_THREAD_ROWS, CUDA_THREAD_COLS) micro-tile in registers. Threads per block:
#: (TILE_ROWS / THREAD_ROWS) * (TILE_COLS / THREAD_COLS) = 256 by default.
CUDA_TILE_ROWS = 64
CUDA_TILE_COLS = 64
CUDA_TILE_DEPTH = 16
CUDA_THREAD_ROWS = 4
CUDA_THREAD_COLS = 4

#: Threads per block of the elementwise, per-row and reduction kernels.
CUDA_THREADS = 256
#: Blocks of the optimizer kernel (a grid-stride loop): each block first re-derives the
#: step's verdict from the per-tile partial sums, so fewer, fuller blocks are cheaper.
CUDA_OPTIMIZER_BLOCKS = 264

#: The fully fused kernel (one launch per training step) for narrow networks: "auto" uses
#: it when n_inputs and every layer width are <= CUDA_FUSED_MAX_WIDTH; True/False force it.
CUDA_FUSED = "auto"
CUDA_FUSED_MAX_WIDTH = 64
#: Rows of the batch per block of the fused kernel (lowered, for float64 especially, until
#: the weights and two row tiles fit in 48 KiB of shared memory), and threads per block.
CUDA_FUSED_ROWS = 64
CUDA_FUSED_THREADS = 128

#: Device bytes the training data (X and targets) may take; None: half the free memory.
#: Larger data is streamed to the device in chunks of whole batches, once per epoch.
CUDA_DATA_BYTES = None
