"""Device functions shared by every CUDA kernel: the activations and their derivatives
(core/scalars.py's, which both twins call), a block reduction, and the small elementwise
kernels (fill, gather, l2_backward).

Only device functions and kernels without compile-time sizes live here, so they are plain
module-level @cuda.jit functions.
"""
from numba import cuda

from ..core.activations import SOFTMAX
from ..core.scalars import ELEMENTWISE_CODES
from ..config import CUDA_CACHE

#: The activation codes the CUDA kernels have branches for: core/scalars.activate and
#: activation_grad (compiled as device functions), and loss.output_row for softmax. Device
#: code cannot raise, so cuda/backend.py refuses any other code before the first launch.
HANDLED_ACTIVATIONS = ELEMENTWISE_CODES + (SOFTMAX,)


@cuda.jit(device=True, cache=CUDA_CACHE)
def block_sum(buf, tid, n_threads):
    """Sum buf[q, :n_threads] into buf[q, 0] for every row q, by a tree (deterministic order).

    Every thread of the block must call it; buf is a shared (rows, n_threads) array already
    filled, one column per thread.
    """
    half = 1
    while half < n_threads:
        half *= 2
    half //= 2
    cuda.syncthreads()
    while half > 0:
        if tid < half and tid + half < n_threads:
            for q in range(buf.shape[0]):
                buf[q, tid] += buf[q, tid + half]
        cuda.syncthreads()
        half //= 2


@cuda.jit(cache=CUDA_CACHE)
def fill_kernel(out, value):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = value


@cuda.jit(cache=CUDA_CACHE)
def gather_rows(xbatch, tbatch, x, targets, perm, start):
    """xbatch[i] = x[perm[start + i]] and tbatch[i] = targets[perm[start + i]] for the batch.

    One thread per element of the (m, n_inputs + n_outputs) pair of rows, so consecutive
    threads read consecutive addresses of a row.
    """
    m, n_in = xbatch.shape
    n_out = tbatch.shape[1]
    width = n_in + n_out
    idx = cuda.grid(1)
    if idx < m * width:
        i = idx // width
        j = idx - i * width
        row = perm[start + i]
        if j < n_in:
            xbatch[i, j] = x[row, j]
        else:
            tbatch[i, j - n_in] = targets[row, j - n_in]


@cuda.jit(cache=CUDA_CACHE)
def l2_backward_kernel(grads, params, n_weights, l2):
    """grads[:n_weights] += l2 * params[:n_weights], as cpu/network.l2_backward: the
    gradient of the l2 term, which model.gradients() reports (training adds it later)."""
    i = cuda.grid(1)
    if i < n_weights:
        grads[i] += l2 * params[i]
