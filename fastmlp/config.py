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
import os

import numba

from .core import jitcache, shipped

CACHE = True
#: Kernels compiled ahead of time and shipped with the package (core/shipped.py,
#: cpu/ship.py) load instead of compiling where this CPU can run them;
#: FASTMLP_SHIPPED_KERNELS=0 compiles everything for this CPU instead.
SHIPPED_KERNELS = os.environ.get("FASTMLP_SHIPPED_KERNELS", "1") != "0"
#: While a cold fit compiles its training kernel, a second process compiles into the same
#: cache, on another core, the functions that kernel compiles separately and the inference
#: kernels the model calls next (cpu/ahead.py). FASTMLP_COMPILE_AHEAD=0 turns it off. A
#: first inference waits at most COMPILE_AHEAD_WAIT seconds for that process, then
#: compiles by itself.
COMPILE_AHEAD = os.environ.get("FASTMLP_COMPILE_AHEAD", "1") != "0"
COMPILE_AHEAD_WAIT = 120.0
FASTMATH = frozenset({"reassoc", "contract"})
NOGIL = True
ERROR_MODEL = "numpy"

#: A GEMM goes to BLAS when its wider side (n_in or n_out) reaches BLAS_MIN_WIDTH and it
#: has BLAS_MIN_MACS multiply-adds; below that, BLAS call overhead dominates and the
#: hand-written loops win (docs/tuning.md has the runs). Which BLAS: numpy's bundled
#: OpenBLAS called by symbol, else np.dot (cpu/gemm.py; the environment variable
#: FASTMLP_BLAS_BY_SYMBOL=0, read once before the first kernel, picks np.dot).
BLAS_MIN_WIDTH = 8
BLAS_MIN_MACS = 512

#: Networks with at most SPECIALIZE_MAX_WEIGHTS weights train with a kernel generated for
#: their architecture (cpu/codegen.py), every size a constant: row by row in scalar
#: locals for batches under SPECIALIZE_COLUMNS_MIN_BATCH rows, unit by unit across the batch
#: (loops vectorised over the rows) from there: a step several times shorter than the
#: generic kernel's, for a compile per architecture and layout that grows with the weights
#: and then loads from numba's cache (docs/tuning.md).
#:
#: SPECIALIZE: "auto" uses the generated kernel when it is already compiled (in memory or
#: in numba's disk cache), or when the fit is long enough to pay for its compile: steps x
#: SPECIALIZE_STEP_SAVING > SPECIALIZE_COMPILE_SECONDS + SPECIALIZE_COMPILE_PER_WEIGHT x
#: weights. Otherwise the generic kernel trains (the same numbers up to rounding), so the
#: first fit of a new small architecture costs no compile. True: always when eligible
#: (compiling if need be); False: never.
SPECIALIZE = "auto"
SPECIALIZE_MAX_WEIGHTS = 128
SPECIALIZE_COLUMNS_MIN_BATCH = 6
#: The "auto" rule's model: a compile of about 2 s + 0.04 s a weight against a saving of
#: 1.5 us a step (the low side of what was measured; docs/tuning.md).
SPECIALIZE_STEP_SAVING = 1.5e-6
SPECIALIZE_COMPILE_SECONDS = 2.0
SPECIALIZE_COMPILE_PER_WEIGHT = 0.04

#: BLAS threads while `fit` trains on the CPU with the serial kernels (None: the BLAS
#: library's default, one per core). Wide networks train with the parallel kernels below,
#: whose parts call BLAS with one thread each; the rest train with one BLAS thread, because
#: OpenBLAS splits each GEMM statically between its threads and waits for all of them: on
#: a shared host, when another process holds the second core, every GEMM waits a
#: scheduler slice.
BLAS_THREADS = 1

#: The data-parallel CPU kernels (cpu/parallel.py) split a step's rows into one part per
#: thread, each part's forward and backward passes on its own core with one-thread BLAS.
#: CPU_THREADS: the threads (and parts) they may use; None for one per core this process
#: may run on (its CPU affinity, at most NUMBA_NUM_THREADS); 1 turns them off. Results
#: depend on the parts in the last bits, never on how many threads ran them
#: (cpu/threads.py picks that count by timing).
CPU_THREADS = None
#: A fit is split when a step has PARALLEL_MIN_MACS multiply-adds or more (batch rows x
#: the sum of n_in * n_out over the layers) and every part keeps PARALLEL_MIN_PART_ROWS
#: rows; `forward` is split from PARALLEL_MIN_FORWARD_ROWS rows.
PARALLEL_MIN_MACS = 1 << 21
PARALLEL_MIN_PART_ROWS = 16
PARALLEL_MIN_FORWARD_ROWS = 2048
#: A split `forward` hands its rows out in chunks of this many, each to whichever thread
#: asks next: small enough that a thread on a slower core takes fewer, large enough for a
#: GEMM (10,000 rows of mnist-small, two threads: 512 beat 256, 1024 and 2048; docs/tuning.md).
FORWARD_CHUNK_ROWS = 512
#: ThreadChooser: steps (or chunks of rows) each thread count is timed for, in how many
#: timed calls (the fastest counts: one call stalled by another tenant of a shared core once
#: made a fresh process keep one thread; docs/tuning.md), and how often the slower is timed
#: again.
THREAD_PROBE_STEPS = 3
THREAD_PROBE_ROUNDS = 2
THREAD_REPROBE_SECONDS = 2.0

#: Entries a History keeps at most: a longer fit merges neighbouring epochs in pairs
#: (History.epoch_stride), so its memory stays under ~40 bytes x this x (layers + 4).
HISTORY_MAX_ENTRIES = 1 << 17

#: Rows the workspace holds at least, so that inference runs in chunks worth a GEMM even for
#: models trained with tiny batches; past about 1024 rows a larger chunk gains little and
#: costs 8 bytes a row per unit of width.
MIN_WORKSPACE_ROWS = 1024

#: With progress=True, `fit` returns to Python about this often (seconds) to update the bar
#: and let Ctrl-C through.
PROGRESS_INTERVAL = 0.1

# Editing this file (or any other kernel source) invalidates every cached fastmlp kernel:
# jitcache.py adds a digest of those files to numba's cache stamps.
jitcache.install(shipped.load_shipped if SHIPPED_KERNELS and CACHE else None)
# Numba compiles every @jit function a kernel calls as a library of its own, optimises it
# and generates its machine code, then links its IR into each caller and does it all again:
# a deep call chain pays its compile once per level. So the functions that only thread views
# and codes down the chain (network.py's passes, dense_forward/backward, the train.py step
# helpers, optimizer_step) are @jit(inline="always"): numba inlines them into their caller
# before typing. The functions with the loops over many codes (activation_*, loss_*, the
# optimizer steps) stay separate: inlined, they made numba's typing of a kernel 3x slower.
#
# Every kernel's cache files are read and written under a lock (jitcache.lock_files): numba's
# own can mix two processes' entries when both compile one function at once.
_JIT_OPTIONS = {"cache": CACHE, "fastmath": set(FASTMATH), "nogil": NOGIL,
                "error_model": ERROR_MODEL}


def jit(function=None, **options):
    """numba.njit with the package's flags (options override them), as @jit or
    @jit(...)."""
    if function is None:
        return functools.partial(jit, **options)
    return jitcache.lock_files(numba.njit(function, **{**_JIT_OPTIONS, **options}))


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

#: Many training steps per launch of the fused kernel (cuda/fused_steps.py): "auto" when the
#: data is on the device and the network, a whole batch and the step's buffers fit one
#: block's shared memory; False: one launch per step; True: like "auto", but an error when
#: it cannot be used.
CUDA_FUSED_STEPS = "auto"
#: Most steps one such launch runs: bounds a launch's duration (and so how long Ctrl-C and
#: a display watchdog wait), at a launch's host overhead per this many steps.
CUDA_FUSED_STEPS_PER_LAUNCH = 4096
#: Bytes of shuffled row permutations sent up per launch, one per epoch the launch touches.
CUDA_FUSED_PERM_BYTES = 8 << 20

#: Device bytes the training data (X and targets) may take; None: half the free memory.
#: Larger data is streamed to the device in chunks of whole batches, once per epoch.
CUDA_DATA_BYTES = None
