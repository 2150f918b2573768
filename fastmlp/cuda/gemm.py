"""Tiled shared-memory GEMM kernels of the dense layer, with fused epilogues.

Every product here is C (rows, cols) = L (rows, depth) @ R (depth, cols), where L and R are
2-D arrays read either as stored or transposed:

    dense_forward    out   = inp   @ weight     epilogue: + bias (none if it is empty),
                                                activation
    dense_backward   dW    = inp^T @ dout       epilogue: db = column sums of dout; per-tile
                                                sums of (dW + l2 W)^2, W^2 and db^2
                     dinp  = dout  @ weight^T   epilogue: * g'(inp) of the previous layer

A block computes one (TILE_ROWS, TILE_COLS) tile of C. It walks the depth TILE_DEPTH at a
time: the block's threads copy a (TILE_DEPTH, TILE_ROWS) slice of L and a (TILE_DEPTH,
TILE_COLS) slice of R into shared memory, both depth-major, so that each thread then reads a
contiguous run of THREAD_ROWS values of L and THREAD_COLS values of R per depth step and
accumulates their outer product in registers (its micro-tile). Copies are arranged so that
consecutive threads read consecutive global addresses, whichever way L or R is read.

Tile sizes must be compile-time constants (they size shared and local arrays), so the
kernels are built by `kernels(tile)` for a tile configuration and cached per process.
"""
import functools

from numba import cuda, float64

from .. import config
from ..core.scalars import activate, activation_grad
from .elementwise import block_sum


@cuda.jit(device=True, cache=config.CUDA_CACHE)
def load_tile(tile, width, src, transposed, start, p0, n_lines, depth, tid, n_threads):
    """tile[p, r] = S(start + r, p0 + p) for r < width, zero outside S, where S = src.T
    if transposed.

    tile is (TILE_DEPTH, width + 1): the extra column makes the stores of consecutive p land
    in different shared-memory banks. Not transposed, S(r, p) = src[r, p] is contiguous along
    p, so consecutive threads take consecutive p; transposed, along r.
    """
    tile_depth = tile.shape[0]
    for idx in range(tid, tile_depth * width, n_threads):
        if transposed:
            p = idx // width
            r = idx - p * width
        else:
            r = idx // tile_depth
            p = idx - r * tile_depth
        line = start + r
        col = p0 + p
        if line < n_lines and col < depth:
            if transposed:
                tile[p, r] = src[col, line]
            else:
                tile[p, r] = src[line, col]
        else:
            tile[p, r] = 0


@cuda.jit(device=True, cache=config.CUDA_CACHE)
def tile_product(acc, left_frag, right_frag, column_sums, left_tile, right_tile, left,
                 left_transposed, right, right_transposed, row0, col0, n_rows, n_cols, depth,
                 ty, tx, tid, n_threads, sum_columns):
    """acc (THREAD_ROWS, THREAD_COLS) = this thread's micro-tile of L @ R for the block tile
    at (row0, col0); with sum_columns, column_sums (THREAD_COLS) += the column sums of the
    thread's columns of R (only threads with ty == 0 add, so each column is summed once)."""
    thread_rows, thread_cols = acc.shape
    tile_depth = left_tile.shape[0]
    tile_rows = left_tile.shape[1] - 1
    tile_cols = right_tile.shape[1] - 1
    for a in range(thread_rows):
        for b in range(thread_cols):
            acc[a, b] = 0
    for b in range(thread_cols):
        column_sums[b] = 0
    for p0 in range(0, depth, tile_depth):
        # L is read as rows (row0 ...) x depth; R as depth x cols, i.e. lines (col0 ...) of R^T.
        load_tile(left_tile, tile_rows, left, left_transposed, row0, p0, n_rows, depth, tid,
                  n_threads)
        load_tile(right_tile, tile_cols, right, not right_transposed, col0, p0, n_cols, depth,
                  tid, n_threads)
        cuda.syncthreads()
        for p in range(tile_depth):
            for a in range(thread_rows):
                left_frag[a] = left_tile[p, ty * thread_rows + a]
            for b in range(thread_cols):
                right_frag[b] = right_tile[p, tx * thread_cols + b]
            for a in range(thread_rows):
                for b in range(thread_cols):
                    acc[a, b] += left_frag[a] * right_frag[b]
        if sum_columns and ty == 0:
            for p in range(tile_depth):
                for b in range(thread_cols):
                    column_sums[b] += right_tile[p, tx * thread_cols + b]
        cuda.syncthreads()


def tile_config():
    """The tile configuration in force: (rows, cols, depth, thread_rows, thread_cols)."""
    tile = (config.CUDA_TILE_ROWS, config.CUDA_TILE_COLS, config.CUDA_TILE_DEPTH,
            config.CUDA_THREAD_ROWS, config.CUDA_THREAD_COLS)
    rows, cols, _, thread_rows, thread_cols = tile
    if min(tile) < 1 or rows % thread_rows or cols % thread_cols:
        raise ValueError(f"bad CUDA tile configuration {tile}: sizes must be positive and "
                         f"CUDA_TILE_ROWS/COLS multiples of CUDA_THREAD_ROWS/COLS")
    return tile


def threads_per_block(tile):
    rows, cols, _, thread_rows, thread_cols = tile
    return (rows // thread_rows) * (cols // thread_cols)


def tiles(n_rows, n_cols, tile):
    """Number of block tiles covering an (n_rows, n_cols) output, and tiles per row of them."""
    across = -(-n_cols // tile[1])
    return -(-n_rows // tile[0]) * across, across


@functools.lru_cache(maxsize=None)
def kernels(tile):
    """(dense_forward, dense_backward) kernels for a tile configuration."""
    tile_rows, tile_cols, tile_depth, thread_rows, thread_cols = tile
    n_threads = threads_per_block(tile)
    threads_across = tile_cols // thread_cols
    # Shared tiles get one column of padding (see load_tile); shapes must be constants.
    padded_rows = tile_rows + 1
    padded_cols = tile_cols + 1

    @cuda.jit(cache=config.CUDA_CACHE)
    def dense_forward(out, inp, weight, bias, activation):
        """out (m, n_out) = activation(inp (m, n_in) @ weight (n_in, n_out) + bias); an empty
        bias adds nothing (matmul_forward)."""
        m, n_in = inp.shape
        n_out = out.shape[1]
        left_tile = cuda.shared.array((tile_depth, padded_rows), out.dtype)
        right_tile = cuda.shared.array((tile_depth, padded_cols), out.dtype)
        acc = cuda.local.array((thread_rows, thread_cols), out.dtype)
        left_frag = cuda.local.array(thread_rows, out.dtype)
        right_frag = cuda.local.array(thread_cols, out.dtype)
        column_sums = cuda.local.array(thread_cols, out.dtype)
        tid = cuda.threadIdx.x
        ty = tid // threads_across
        tx = tid - ty * threads_across
        across = (n_out + tile_cols - 1) // tile_cols
        row0 = (cuda.blockIdx.x // across) * tile_rows
        col0 = (cuda.blockIdx.x % across) * tile_cols
        tile_product(acc, left_frag, right_frag, column_sums, left_tile, right_tile, inp,
                     False, weight, False, row0, col0, m, n_out, n_in, ty, tx, tid, n_threads,
                     False)
        has_bias = bias.shape[0] != 0
        for a in range(thread_rows):
            i = row0 + ty * thread_rows + a
            for b in range(thread_cols):
                j = col0 + tx * thread_cols + b
                if i < m and j < n_out:
                    z = acc[a, b]
                    if has_bias:
                        z += bias[j]
                    out[i, j] = activate(z, activation)

    @cuda.jit(cache=config.CUDA_CACHE)
    def dense_backward(dinp, dweight, dbias, tile_sums, dout, inp, weight, inp_activation,
                       need_dinp, l2):
        """Blocks [0, n_dw_tiles) compute dW tiles and, in the first row of tiles, db; the
        rest compute dinp = (dout @ weight^T) * g'(inp) when need_dinp.

        dweight gets the data gradient alone, as on the CPU: the l2 term is added where the
        gradient is used (the norms below, the optimizer). tile_sums[t] = (sum (dW + l2 W)^2,
        sum W^2, sum db^2) over dW tile t, so that the optimizer can check the gradients,
        take their norms and add the l2 term to the loss without another pass. The squares
        of gradients add up in float64, as cpu/optim.gradient_norms: in float32 a finite
        gradient above 1.8e19 would square to inf and stop training for nothing.
        """
        m, n_in = inp.shape
        n_out = dout.shape[1]
        left_tile = cuda.shared.array((tile_depth, padded_rows), dout.dtype)
        right_tile = cuda.shared.array((tile_depth, padded_cols), dout.dtype)
        sums = cuda.shared.array((3, n_threads), tile_sums.dtype)
        acc = cuda.local.array((thread_rows, thread_cols), dout.dtype)
        left_frag = cuda.local.array(thread_rows, dout.dtype)
        right_frag = cuda.local.array(thread_cols, dout.dtype)
        column_sums = cuda.local.array(thread_cols, dout.dtype)
        tid = cuda.threadIdx.x
        ty = tid // threads_across
        tx = tid - ty * threads_across
        dw_across = (n_out + tile_cols - 1) // tile_cols
        n_dw_tiles = ((n_in + tile_rows - 1) // tile_rows) * dw_across
        block = cuda.blockIdx.x
        if block < n_dw_tiles:
            row0 = (block // dw_across) * tile_rows
            col0 = (block % dw_across) * tile_cols
            first_row = row0 == 0
            tile_product(acc, left_frag, right_frag, column_sums, left_tile, right_tile, inp,
                         True, dout, False, row0, col0, n_in, n_out, m, ty, tx, tid,
                         n_threads, first_row)
            decay = weight.dtype.type(l2)  # in the weights' dtype, as cpu gradient_norms
            grad_sq = 0.0
            weight_sq = 0.0
            bias_sq = 0.0
            for a in range(thread_rows):
                k = row0 + ty * thread_rows + a
                for b in range(thread_cols):
                    j = col0 + tx * thread_cols + b
                    if k < n_in and j < n_out:
                        w = weight[k, j]
                        g = acc[a, b]
                        dweight[k, j] = g
                        v = float64(g + decay * w)
                        grad_sq += v * v
                        weight_sq += w * w  # in the weights' dtype, as cpu l2_forward
            if first_row and ty == 0:
                for b in range(thread_cols):
                    j = col0 + tx * thread_cols + b
                    if j < n_out:
                        dbias[j] = column_sums[b]
                        v = float64(column_sums[b])
                        bias_sq += v * v
            sums[0, tid] = grad_sq
            sums[1, tid] = weight_sq
            sums[2, tid] = bias_sq
            block_sum(sums, tid, n_threads)
            if tid == 0:
                for q in range(3):
                    tile_sums[block, q] = sums[q, 0]
        elif need_dinp:
            t = block - n_dw_tiles
            across = (n_in + tile_cols - 1) // tile_cols
            row0 = (t // across) * tile_rows
            col0 = (t % across) * tile_cols
            tile_product(acc, left_frag, right_frag, column_sums, left_tile, right_tile, dout,
                         False, weight, True, row0, col0, m, n_in, n_out, ty, tx, tid,
                         n_threads, False)
            for a in range(thread_rows):
                i = row0 + ty * thread_rows + a
                for b in range(thread_cols):
                    k = col0 + tx * thread_cols + b
                    if i < m and k < n_in:
                        dinp[i, k] = activation_grad(acc[a, b], inp[i, k], inp_activation)

    return dense_forward, dense_backward
