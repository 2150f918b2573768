"""The fully fused training step for narrow networks: one launch runs a whole step.

In the manner of tiny-cuda-nn's fully fused MLP: when n_inputs and every layer width are at
most MAX_WIDTH, a block takes ROWS rows of the batch, gathers them through the permutation,
and runs the forward pass, the loss and the backward pass layer by layer with the current
layer's weights and the rows' activations (or deltas) in shared memory; activations also go
to the workspace for the backward pass. Each block leaves its share of the gradient in its
row of `partials` (n_blocks, n_params). The last block to finish (an atomic ticket after a
memory fence, so it sees every other block's partials) sums the partials in block order
into grads (the data gradient, as on the CPU), fills tile_sums with one "tile" per layer,
takes the step's verdict (optim.step_verdict) and applies the optimizer, l2 term included,
to every parameter. The sums run in a fixed order, so the step is deterministic.

The parameter-sized buffers are flat; layer l's rows of the activation buffer start at
rows * width_offset[l], as in the CPU code. Shared memory holds MAX_WIDTH^2 weights, two
(ROWS, MAX_WIDTH) row tiles and the reduction buffer, so `rows_per_block` keeps the total
within 48 KiB, the static shared memory limit.

When the parameters, a whole batch and the step's buffers fit one block's shared memory
(steps_shape, StepsShape), fused_steps.py runs many steps per launch instead; use_steps
makes that choice (config.CUDA_FUSED_STEPS), and this kernel serves the networks too big
for it.
"""
import functools
from typing import NamedTuple

from numba import cuda, float64

from .. import config
from ..core.spec import ACTIVATION, B_OFFSET, N_IN, N_OUT, W_OFFSET, WIDTH_OFFSET
from ..core.scalars import activate, activation_grad
from .elementwise import block_sum
from .loss import delta_row, output_row, row_loss
from .optim import BIAS_SQ, GRAD_SQ, OK, STATUS, WEIGHT_SQ, step_verdict, update_parameter

SHARED_BYTES = 48 * 1024


def fits(spec):
    """Whether the fused kernel can train this network (every width <= MAX_WIDTH)."""
    return spec.max_width <= config.CUDA_FUSED_MAX_WIDTH


def use_fused(spec):
    """The configured choice: CUDA_FUSED True/False, or "auto" = whenever the network fits."""
    choice = config.CUDA_FUSED
    if choice == "auto":
        return fits(spec)
    if choice and not fits(spec):
        raise ValueError(f"CUDA_FUSED=True but this network is wider than "
                         f"CUDA_FUSED_MAX_WIDTH={config.CUDA_FUSED_MAX_WIDTH}")
    return bool(choice)


def rows_per_block(itemsize):
    """config.CUDA_FUSED_ROWS, lowered until the shared arrays fit in SHARED_BYTES."""
    width = config.CUDA_FUSED_MAX_WIDTH
    fixed = (width * width + width) * itemsize + 4 * config.CUDA_FUSED_THREADS * 8 + 8
    fit = (SHARED_BYTES - fixed) // (2 * width * itemsize)
    if fit < 1:
        raise ValueError(f"CUDA_FUSED_MAX_WIDTH={width} leaves no shared memory for rows")
    return int(min(config.CUDA_FUSED_ROWS, fit))


def shape(itemsize):
    """(max_width, rows per block, threads per block) of the fused kernel for a dtype."""
    return (config.CUDA_FUSED_MAX_WIDTH, rows_per_block(itemsize), config.CUDA_FUSED_THREADS)


class StepsShape(NamedTuple):
    """Compile-time sizes of the multi-step kernel (fused_steps.py): one network, one batch."""
    n_inputs: int
    n_outputs: int
    hidden_width: int     # the hidden layers' widths added up (their activations' row)
    max_width: int        # the widest layer output: the delta tiles' row
    n_layers: int
    params: int           # n_params, rounded up so that similar networks share a kernel
    rows: int             # the batch's rows, rounded up likewise
    n_threads: int
    moments_shared: bool  # the optimizer's two moment buffers in shared memory too


def steps_bytes(shape, itemsize):
    """Static shared memory of the multi-step kernel for a shape, in bytes."""
    moments = 2 * shape.params if shape.moments_shared else 2
    values = (2 * shape.params + moments  # parameters, gradients, moments
              + shape.rows * (shape.n_inputs + shape.hidden_width)  # inputs, activations
              + 3 * shape.rows * shape.n_outputs  # logits, outputs, targets
              + 2 * shape.rows * shape.max_width)  # two delta tiles
    float64s = shape.rows + (1 + 3 * shape.n_layers) * shape.n_threads  # losses, sums
    return values * itemsize + 8 * float64s + 12 * 8  # 12 arrays, aligned to 8 bytes


def _round_up(n, multiple):
    return -(-n // multiple) * multiple


def steps_shape(spec, batch_size, itemsize):
    """The StepsShape for training spec on batches of batch_size rows, moments in shared
    memory when they fit too; None when even without them the network, a batch and the
    step's buffers exceed SHARED_BYTES."""
    layers = spec.layers
    # Threads for the largest phase (a layer's outputs over the batch, its weights, the
    # update), a warp at least and CUDA_FUSED_THREADS at most: a tiny network's barriers
    # and reductions then span one warp, not four.
    work = max(batch_size * spec.max_width, max(l.n_in * l.n_out for l in layers),
               spec.n_params)
    threads = min(config.CUDA_FUSED_THREADS, max(32, 1 << (work - 1).bit_length()))
    common = dict(n_inputs=spec.n_inputs, n_outputs=spec.n_outputs,
                  hidden_width=sum(l.n_out for l in layers[:-1]),
                  max_width=max(l.n_out for l in layers), n_layers=len(layers),
                  n_threads=threads)
    for moments_shared in (True, False):
        # Rounded sizes first (fewer compiles); the exact ones when only those fit.
        for params, rows in ((_round_up(spec.n_params, 32), _round_up(batch_size, 8)),
                             (spec.n_params, batch_size)):
            candidate = StepsShape(params=params, rows=rows, moments_shared=moments_shared,
                                   **common)
            if steps_bytes(candidate, itemsize) <= SHARED_BYTES:
                return candidate
    return None


def use_steps(spec, fused, batch_size, itemsize, resident):
    """The configured choice of many steps per launch (config.CUDA_FUSED_STEPS): its
    StepsShape, or None for one launch per step. Needs the fused path (fused: the
    workspace's choice) and resident data."""
    choice = config.CUDA_FUSED_STEPS
    if not choice:
        return None
    shape = steps_shape(spec, batch_size, itemsize) if fused else None
    if choice == "auto" or (shape is not None and resident):
        return shape if resident else None
    why = ("the data is streamed (over config.CUDA_DATA_BYTES)" if shape is not None else
           f"this network and a batch of {batch_size} rows do not fit one block's "
           f"{SHARED_BYTES} bytes of shared memory (or the fused path is off)")
    raise ValueError(f"CUDA_FUSED_STEPS=True but {why}; set it to \"auto\" or False")


@functools.lru_cache(maxsize=None)
def kernel(max_width, block_rows, n_threads):
    @cuda.jit(cache=config.CUDA_CACHE)
    def fused_step(params, grads, moment1, moment2, status, epoch_stats, row_losses,
                   tile_sums, partials, counter, acts, xbatch, tbatch, logits, outputs,
                   dlogits, x, targets, perm, start, layers, rows, layer_tiles, hyper,
                   optimizer, n_weights, loss, l2, m, epoch, step_size,
                   bias_correction2_sqrt):
        weights = cuda.shared.array((max_width, max_width), params.dtype)
        bias = cuda.shared.array(max_width, params.dtype)
        tile_a = cuda.shared.array((block_rows, max_width), params.dtype)
        tile_b = cuda.shared.array((block_rows, max_width), params.dtype)
        sums = cuda.shared.array((4, n_threads), epoch_stats.dtype)
        ticket = cuda.shared.array(1, counter.dtype)
        tid = cuda.threadIdx.x
        block = cuda.blockIdx.x
        if tid == 0:
            sums[0, 0] = status[STATUS]
        cuda.syncthreads()
        if sums[0, 0] != OK:  # an earlier step failed: change nothing
            return
        n_layers = layers.shape[0]
        last = n_layers - 1
        row0 = block * block_rows
        here = min(block_rows, m - row0)

        # Gather this block's rows of x and the targets through the permutation.
        n_inputs = x.shape[1]
        n_outputs = targets.shape[1]
        for idx in range(tid, here * (n_inputs + n_outputs), n_threads):
            r = idx // (n_inputs + n_outputs)
            c = idx - r * (n_inputs + n_outputs)
            source = perm[start + row0 + r]
            if c < n_inputs:
                xbatch[row0 + r, c] = x[source, c]
                tile_a[r, c] = x[source, c]
            else:
                tbatch[row0 + r, c - n_inputs] = targets[source, c - n_inputs]

        # Forward: tile_a holds the layer's input rows, tile_b receives its outputs.
        for l in range(n_layers):
            n_in = layers[l, N_IN]
            n_out = layers[l, N_OUT]
            activation = layers[l, ACTIVATION]
            w_off = layers[l, W_OFFSET]
            out_off = rows * layers[l, WIDTH_OFFSET]
            cuda.syncthreads()  # the previous layer is done with weights and tile_a
            for idx in range(tid, n_in * n_out, n_threads):
                weights[idx // n_out, idx % n_out] = params[w_off + idx]
            for j in range(tid, n_out, n_threads):
                bias[j] = params[layers[l, B_OFFSET] + j]
            cuda.syncthreads()
            for idx in range(tid, here * n_out, n_threads):
                r = idx // n_out
                j = idx - r * n_out
                z = bias[j]
                for k in range(n_in):
                    z += tile_a[r, k] * weights[k, j]
                if l == last:
                    logits[row0 + r, j] = z  # the loss pass applies the output activation
                else:
                    a = activate(z, activation)
                    tile_b[r, j] = a
                    acts[out_off + (row0 + r) * n_out + j] = a
            cuda.syncthreads()
            tile_a, tile_b = tile_b, tile_a

        # Output activation, row losses and the output delta, one thread per row.
        output_activation = layers[last, ACTIVATION]
        for r in range(tid, here, n_threads):
            i = row0 + r
            output_row(outputs, logits, i, output_activation)
            row_losses[i] = row_loss(outputs, logits, tbatch, i, loss)
            delta_row(dlogits, outputs, tbatch, i, 1.0 / m, loss, output_activation)
        cuda.syncthreads()
        n_out = layers[last, N_OUT]
        for idx in range(tid, here * n_out, n_threads):
            r = idx // n_out
            tile_a[r, idx - r * n_out] = dlogits[row0 + r, idx - r * n_out]

        # Backward: tile_a holds the layer's delta, tile_b receives the previous layer's.
        for l in range(last, -1, -1):
            n_in = layers[l, N_IN]
            n_out = layers[l, N_OUT]
            w_off = layers[l, W_OFFSET]
            inp_off = rows * layers[l - 1, WIDTH_OFFSET] if l > 0 else 0
            inp_activation = layers[l - 1, ACTIVATION] if l > 0 else 0
            cuda.syncthreads()
            for idx in range(tid, n_in * n_out, n_threads):
                weights[idx // n_out, idx % n_out] = params[w_off + idx]
            cuda.syncthreads()
            for idx in range(tid, n_in * n_out, n_threads):  # this block's share of dW
                k = idx // n_out
                j = idx - k * n_out
                # Sums start from their first term, which keeps them in the buffers' dtype.
                if l > 0:
                    s = acts[inp_off + row0 * n_in + k] * tile_a[0, j]
                    for r in range(1, here):
                        s += acts[inp_off + (row0 + r) * n_in + k] * tile_a[r, j]
                else:
                    s = xbatch[row0, k] * tile_a[0, j]
                    for r in range(1, here):
                        s += xbatch[row0 + r, k] * tile_a[r, j]
                partials[block, w_off + idx] = s
            for j in range(tid, n_out, n_threads):  # ... and of db
                s = tile_a[0, j]
                for r in range(1, here):
                    s += tile_a[r, j]
                partials[block, layers[l, B_OFFSET] + j] = s
            if l > 0:
                for idx in range(tid, here * n_in, n_threads):
                    r = idx // n_in
                    k = idx - r * n_in
                    s = tile_a[r, 0] * weights[k, 0]
                    for j in range(1, n_out):
                        s += tile_a[r, j] * weights[k, j]
                    a = acts[inp_off + (row0 + r) * n_in + k]
                    tile_b[r, k] = activation_grad(s, a, inp_activation)
            cuda.syncthreads()
            tile_a, tile_b = tile_b, tile_a

        # The last block to arrive reduces the partials and takes the step.
        cuda.threadfence()  # this block's partials and row losses are visible to all
        cuda.syncthreads()
        if tid == 0:
            ticket[0] = cuda.atomic.add(counter, 0, 1)
        cuda.syncthreads()
        if ticket[0] != cuda.gridDim.x - 1:
            return
        n_blocks = cuda.gridDim.x
        if tid == 0:
            counter[0] = 0  # ready for the next launch
        decay = params.dtype.type(l2)
        for l in range(n_layers):
            n_in = layers[l, N_IN]
            n_out = layers[l, N_OUT]
            w_off = layers[l, W_OFFSET]
            b_off = layers[l, B_OFFSET]
            grad_sq = 0.0
            weight_sq = 0.0
            bias_sq = 0.0
            for i in range(w_off + tid, w_off + n_in * n_out, n_threads):
                g = partials[0, i]
                for b in range(1, n_blocks):
                    g += partials[b, i]
                w = params[i]
                grads[i] = g  # the data gradient, as on the CPU
                v = float64(g + decay * w)  # squares in float64, as gemm.dense_backward
                grad_sq += v * v
                weight_sq += w * w
            for i in range(b_off + tid, b_off + n_out, n_threads):
                g = partials[0, i]
                for b in range(1, n_blocks):
                    g += partials[b, i]
                grads[i] = g
                v = float64(g)
                bias_sq += v * v
            sums[GRAD_SQ, tid] = grad_sq
            sums[WEIGHT_SQ, tid] = weight_sq
            sums[BIAS_SQ, tid] = bias_sq
            sums[3, tid] = 0.0
            block_sum(sums, tid, n_threads)
            if tid == 0:
                for q in range(3):
                    tile_sums[l, 0, q] = sums[q, 0]
            cuda.syncthreads()
        ok = step_verdict(sums, status, epoch_stats, row_losses, tile_sums, layer_tiles,
                          params, m, epoch, l2, True, tid, n_threads)
        if ok:
            for i in range(tid, params.shape[0], n_threads):
                update_parameter(params, grads, moment1, moment2, i, hyper, optimizer,
                                 n_weights, l2, step_size, bias_correction2_sqrt)

    return fused_step
