"""Dense layer kernels on the device, over 2-D device views of the flat buffers.

activation_forward, activation_backward, matmul_forward, dense_forward and dense_backward
are the twins of cpu/dense.py: the same names, arguments and results, on device arrays.
Each launches kernels now. The training plans (network.py) instead keep the Launch
(kernel, grid, block, args) of a `*_launch` function and replay it; dense_forward_launch
fuses bias and elementwise activation into the GEMM's epilogue, where the CPU kernel makes
a second pass, and dense_backward_launch also takes the step's l2 and the buffer for the
per-tile gradient sums that the optimizer's verdict reads.
"""
from typing import NamedTuple

from numba import cuda

from .. import config
from ..core.activations import IDENTITY
from ..core.scalars import activation_grad
from .loss import output_row
from . import device, gemm


class Launch(NamedTuple):
    kernel: object
    grid: int
    block: int
    args: tuple

    def __call__(self):
        # Configure at launch time: the simulator's kernel[grid, block] configures the
        # kernel object itself, so a configured kernel cannot be kept.
        self.kernel[self.grid, self.block](*self.args)


def blocks(n, threads):
    return max(1, -(-n // threads))


@cuda.jit(cache=config.CUDA_CACHE)
def activation_forward_kernel(out, z, bias, activation):
    """z += bias, then out = activation(z), one thread per row (softmax couples a row)."""
    i = cuda.grid(1)
    if i < z.shape[0]:
        for j in range(z.shape[1]):
            z[i, j] += bias[j]
        output_row(out, z, i, activation)


@cuda.jit(cache=config.CUDA_CACHE)
def activation_backward_kernel(delta, a, activation):
    """delta *= activation'(z) in terms of a = activation(z), one thread per element."""
    idx = cuda.grid(1)
    n = delta.shape[1]
    if idx < delta.shape[0] * n:
        i = idx // n
        j = idx - i * n
        delta[i, j] = activation_grad(delta[i, j], a[i, j], activation)


def activation_forward_launch(out, z, bias, activation):
    threads = config.CUDA_THREADS
    return Launch(activation_forward_kernel, blocks(z.shape[0], threads), threads,
                  (out, z, bias, activation))


def activation_backward_launch(delta, a, activation):
    threads = config.CUDA_THREADS
    return Launch(activation_backward_kernel, blocks(delta.size, threads), threads,
                  (delta, a, activation))


def dense_forward_launch(out, inp, weight, bias, activation, tile=None):
    """out (m, n_out) = activation(inp (m, n_in) @ weight + bias), with bias and an
    elementwise activation fused into the GEMM's epilogue (softmax needs the whole row:
    activation_forward after it). An empty bias adds nothing."""
    tile = gemm.tile_config() if tile is None else tile
    forward, _ = gemm.kernels(tile)
    n_tiles, _ = gemm.tiles(inp.shape[0], weight.shape[1], tile)
    return Launch(forward, n_tiles, gemm.threads_per_block(tile),
                  (out, inp, weight, bias, activation))


def matmul_forward_launch(out, inp, weight, tile=None):
    """out (m, n_out) = inp (m, n_in) @ weight: the GEMM with no bias and no activation."""
    return dense_forward_launch(out, inp, weight, weight[0, :0], IDENTITY, tile)


def dense_backward_launch(dinp, dweight, dbias, dout, inp, weight, inp_activation,
                          need_dinp, l2, tile_sums, tile=None):
    """One launch for dW and db, and dinp = (dout @ weight^T) * g'(inp) when need_dinp;
    tile_sums (float64, (dW tiles, 3)) receives each dW tile's sums of (dW + l2 W)^2, W^2
    and db^2 (dweight itself is the data gradient, without the l2 term)."""
    tile = gemm.tile_config() if tile is None else tile
    _, backward = gemm.kernels(tile)
    m, n_in = inp.shape
    n_dw, _ = gemm.tiles(n_in, weight.shape[1], tile)
    n_dinp = gemm.tiles(m, n_in, tile)[0] if need_dinp else 0
    return Launch(backward, n_dw + n_dinp, gemm.threads_per_block(tile),
                  (dinp, dweight, dbias, tile_sums, dout, inp, weight, inp_activation,
                   need_dinp, l2))


# -- the twins of cpu/dense.py: same names, arguments and results, on device arrays ------
def activation_forward(out, z, bias, activation):
    """The layer epilogue: z += bias, then out = activation(z) (row-wise for softmax)."""
    activation_forward_launch(out, z, bias, activation)()


def activation_backward(delta, a, activation):
    """delta *= activation'(z), written in terms of a = activation(z)."""
    activation_backward_launch(delta, a, activation)()


def matmul_forward(out, inp, weight):
    """out (m, n_out) = inp (m, n_in) @ weight (n_in, n_out)."""
    matmul_forward_launch(out, inp, weight)()


def dense_forward(out, z, inp, weight, bias, activation):
    """z (m, n_out) = inp (m, n_in) @ weight + bias and out = activation(z), in the CPU
    kernel's two steps (the plans use dense_forward_launch, which keeps no z)."""
    matmul_forward(z, inp, weight)
    activation_forward(out, z, bias, activation)


def dense_backward(dinp, dweight, dbias, dout, inp, weight, inp_activation, need_dinp):
    """dweight = inp^T dout, dbias = column sums of dout and, when need_dinp, the previous
    layer's delta dinp = (dout weight^T) * g'(inp), inp = g(Z_prev) with g = inp_activation."""
    tile = gemm.tile_config()
    tile_sums = device.zeros((gemm.tiles(inp.shape[1], weight.shape[1], tile)[0], 3),
                             "float64")  # scratch: only the training step reads the sums
    dense_backward_launch(dinp, dweight, dbias, dout, inp, weight, inp_activation, need_dinp,
                          0.0, tile_sums, tile)()
