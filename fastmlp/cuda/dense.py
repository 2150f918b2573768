"""Dense layer kernels on the device: the twins of cpu/dense.py, same names and argument
order (outputs, inputs, weights, then sizes), over 2-D device views of the flat buffers.

Each `*_launch` function returns the Launch (kernel, grid, block, args) that the training
plans keep and replay; the function of the same name without the suffix launches it now.
"""
from typing import NamedTuple

from numba import cuda

from .. import config
from ..activations import IDENTITY, SOFTMAX
from .elementwise import derivative_from_output
from .loss import output_row
from . import gemm


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
def activation_forward_kernel(out, z, activation):
    """out = activation(z), one thread per row (softmax couples a row). out may be z."""
    i = cuda.grid(1)
    if i < z.shape[0]:
        output_row(out, z, i, activation)


@cuda.jit(cache=config.CUDA_CACHE)
def activation_backward_kernel(delta, a, activation):
    """delta *= activation'(z) in terms of a = activation(z), one thread per element."""
    idx = cuda.grid(1)
    n = delta.shape[1]
    if idx < delta.shape[0] * n:
        i = idx // n
        j = idx - i * n
        delta[i, j] *= derivative_from_output(a[i, j], activation)


def activation_forward_launch(out, z, activation):
    threads = config.CUDA_THREADS
    return Launch(activation_forward_kernel, blocks(z.shape[0], threads), threads,
                  (out, z, activation))


def activation_backward_launch(delta, a, activation):
    threads = config.CUDA_THREADS
    return Launch(activation_backward_kernel, blocks(delta.size, threads), threads,
                  (delta, a, activation))


def dense_forward_launch(out, inp, weight, bias, activation, tile=None):
    """out (m, n_out) = activation(inp (m, n_in) @ weight + bias), elementwise activations
    fused into the GEMM's epilogue (softmax needs activation_forward after it)."""
    tile = gemm.tile_config() if tile is None else tile
    forward, _ = gemm.kernels(tile)
    n_tiles, _ = gemm.tiles(inp.shape[0], weight.shape[1], tile)
    return Launch(forward, n_tiles, gemm.threads_per_block(tile),
                  (out, inp, weight, bias, activation))


def dense_backward_launch(dinp, dweight, dbias, dout, inp, weight, inp_activation,
                          need_dinp, l2, tile_sums, tile=None):
    """One launch for dW (+ l2 W) with db, and dinp = (dout @ weight^T) * g'(inp)."""
    tile = gemm.tile_config() if tile is None else tile
    _, backward = gemm.kernels(tile)
    m, n_in = inp.shape
    n_dw, _ = gemm.tiles(n_in, weight.shape[1], tile)
    n_dinp = gemm.tiles(m, n_in, tile)[0] if need_dinp else 0
    return Launch(backward, n_dw + n_dinp, gemm.threads_per_block(tile),
                  (dinp, dweight, dbias, tile_sums, dout, inp, weight, inp_activation,
                   need_dinp, l2))


def activation_forward(out, z, activation):
    activation_forward_launch(out, z, activation)()


def activation_backward(delta, a, activation):
    activation_backward_launch(delta, a, activation)()


def dense_forward(out, inp, weight, bias, activation):
    """As cpu/dense.dense_forward, on device arrays."""
    fused = IDENTITY if activation == SOFTMAX else activation
    dense_forward_launch(out, inp, weight, bias, fused)()
    if activation == SOFTMAX:
        activation_forward(out, out, SOFTMAX)


def dense_backward(dinp, dweight, dbias, dout, inp, weight, inp_activation, need_dinp,
                   l2=0.0, tile_sums=None):
    """As cpu/dense.dense_backward, on device arrays; l2 adds l2 * weight to dweight, and
    tile_sums (float64, (dW tiles, 3)) receives the per-tile sums of dW^2, W^2 and db^2."""
    if tile_sums is None:
        from . import device
        tile = gemm.tile_config()
        tile_sums = device.zeros((gemm.tiles(inp.shape[1], weight.shape[1], tile)[0], 3),
                                 "float64")
    dense_backward_launch(dinp, dweight, dbias, dout, inp, weight, inp_activation, need_dinp,
                          l2, tile_sums)()
