"""Many training steps per launch for narrow networks: one block runs a chunk of training.

When the network, a whole batch and the step's buffers fit one block's shared memory
(fused.steps_shape), one launch of one block runs up to config.CUDA_FUSED_STEPS_PER_LAUNCH
steps in sequence: the parameters (and the optimizer's moments, when they fit) are read
into shared memory once, each step gathers its batch through that epoch's permutation,
runs the forward pass, the loss, the backward pass, the gradient norms, the verdict and
the update in shared memory, with a barrier between phases, and the launch writes the
parameters, the moments and the last step's gradient back at its end. A launch may cross
epochs: the host shuffles every epoch the launch touches ahead of it, with the model's RNG
and in the CPU's order, and sends those permutations up in one copy.

Nothing leaves the block between steps, so the steps need no atomics, no partial buffers
and no grid-wide barrier: what one block cannot do is a single step of a batch too big for
its shared memory, and those networks keep fused.py's one launch per step.

The step is fused.py's arithmetic in the same order (each sum from its first term, rows in
order, float64 for the squares), and the status word, the step counter and the epoch
statistics are kept exactly as optim.step_verdict keeps them: a step whose loss or gradient
is not finite is not applied, and the launch stops there. The verdict takes one block
reduction of every quantity at once, so a step passes 2L + 4 + log2(threads) barriers (L
layers): one after the gather, one per layer forward and backward, one after the loss, and
the reduction's.
"""
import functools
import math

import numpy as np
from numba import cuda, float64

from .. import config
from ..core.optimizers import ADAM_CODE as ADAM, ADAMW_CODE as ADAMW, BETA1, BETA2, LR
from ..core.rng import shuffle
from ..core.spec import ACTIVATION, B_OFFSET, N_IN, N_OUT, W_OFFSET, WIDTH_OFFSET
from . import device
from ..core.scalars import activate, activation_grad
from .elementwise import block_sum
from .loss import delta_row, output_row, row_loss
from .optim import (BIAS_SQ, GRAD_SQ, NONFINITE_GRADIENT, NONFINITE_LOSS, OK, STATUS,
                    STEPS_DONE, WEIGHT_SQ, update_parameter)


@functools.lru_cache(maxsize=None)
def kernel(shape):
    """The multi-step kernel for a fused.StepsShape (compiled per dtype on first launch)."""
    n_inputs, n_outputs, n_layers, n_threads = (shape.n_inputs, shape.n_outputs,
                                                shape.n_layers, shape.n_threads)
    rows, params_size, max_width = shape.rows, shape.params, shape.max_width
    moment_size = shape.params if shape.moments_shared else 1
    moments_shared = shape.moments_shared
    acts_size = rows * (n_inputs + shape.hidden_width)
    n_sums = 1 + 3 * n_layers  # the loss, then each layer's (dW + l2 W)^2, W^2, db^2
    last = n_layers - 1

    @cuda.jit(device=True, cache=config.CUDA_CACHE)
    def forward(acts, logits, params, layers, m, tid):
        """acts: the batch's inputs (layer -1) and hidden activations, layer l's (m, n_out)
        block at rows * (n_inputs + width_offset[l]); the output layer's into logits."""
        for l in range(n_layers):
            n_in = layers[l, N_IN]
            n_out = layers[l, N_OUT]
            activation = layers[l, ACTIVATION]
            w_off = layers[l, W_OFFSET]
            b_off = layers[l, B_OFFSET]
            in_off = rows * (n_inputs + layers[l - 1, WIDTH_OFFSET]) if l > 0 else 0
            out_off = rows * (n_inputs + layers[l, WIDTH_OFFSET])
            for idx in range(tid, m * n_out, n_threads):
                r = idx // n_out
                j = idx - r * n_out
                z = params[b_off + j]
                for k in range(n_in):
                    z += acts[in_off + r * n_in + k] * params[w_off + k * n_out + j]
                if l == last:
                    logits[r, j] = z  # the loss pass applies the output activation
                else:
                    acts[out_off + r * n_out + j] = activate(z, activation)
            cuda.syncthreads()  # the layer's outputs are the next one's inputs

    @cuda.jit(device=True, cache=config.CUDA_CACHE)
    def backward(grads, tile_a, tile_b, acts, params, layers, m, tid):
        """grads = the step's data gradient, from the output delta in tile_a."""
        for l in range(last, -1, -1):
            n_in = layers[l, N_IN]
            n_out = layers[l, N_OUT]
            w_off = layers[l, W_OFFSET]
            inp_off = rows * (n_inputs + layers[l - 1, WIDTH_OFFSET]) if l > 0 else 0
            inp_activation = layers[l - 1, ACTIVATION] if l > 0 else 0
            for idx in range(tid, n_in * n_out, n_threads):  # dW
                k = idx // n_out
                j = idx - k * n_out
                # Sums start from their first term, which keeps them in the buffers' dtype.
                s = acts[inp_off + k] * tile_a[0, j]
                for r in range(1, m):
                    s += acts[inp_off + r * n_in + k] * tile_a[r, j]
                grads[w_off + idx] = s
            for j in range(tid, n_out, n_threads):  # db
                s = tile_a[0, j]
                for r in range(1, m):
                    s += tile_a[r, j]
                grads[layers[l, B_OFFSET] + j] = s
            if l > 0:  # the previous layer's delta
                for idx in range(tid, m * n_in, n_threads):
                    r = idx // n_in
                    k = idx - r * n_in
                    s = tile_a[r, 0] * params[w_off + k * n_out]
                    for j in range(1, n_out):
                        s += tile_a[r, j] * params[w_off + k * n_out + j]
                    a = acts[inp_off + r * n_in + k]
                    tile_b[r, k] = activation_grad(s, a, inp_activation)
            cuda.syncthreads()  # tile_b is whole before it becomes tile_a
            tile_a, tile_b = tile_b, tile_a

    @cuda.jit(device=True, cache=config.CUDA_CACHE)
    def verdict(sums, status, epoch_stats, row_losses, grads, params, layers, m, epoch, l2,
                tid):
        """optim.step_verdict with record=True for this block's step, in one reduction:
        the loss, and each layer's (dW + l2 W)^2, W^2 and db^2 (squares in float64), then
        True when the loss and the gradients are finite; if so, count the step and add its
        loss (l2 term included) times m and each ||dW_l + l2 W_l|| to epoch_stats[epoch],
        else record the failure in status. Every thread gets the same answer."""
        loss_sum = 0.0
        for i in range(tid, m, n_threads):
            loss_sum += row_losses[i]
        sums[0, tid] = loss_sum
        decay = params.dtype.type(l2)
        for l in range(n_layers):
            w_off = layers[l, W_OFFSET]
            b_off = layers[l, B_OFFSET]
            n_out = layers[l, N_OUT]
            grad_sq = 0.0
            weight_sq = 0.0
            bias_sq = 0.0
            for i in range(w_off + tid, w_off + layers[l, N_IN] * n_out, n_threads):
                w = params[i]
                v = float64(grads[i] + decay * w)
                grad_sq += v * v
                weight_sq += w * w
            for i in range(b_off + tid, b_off + n_out, n_threads):
                v = float64(grads[i])
                bias_sq += v * v
            sums[1 + 3 * l + GRAD_SQ, tid] = grad_sq
            sums[1 + 3 * l + WEIGHT_SQ, tid] = weight_sq
            sums[1 + 3 * l + BIAS_SQ, tid] = bias_sq
        block_sum(sums, tid, n_threads)
        grad_sq = 0.0
        weight_sq = 0.0
        bias_sq = 0.0
        for l in range(n_layers):
            grad_sq += sums[1 + 3 * l + GRAD_SQ, 0]
            weight_sq += sums[1 + 3 * l + WEIGHT_SQ, 0]
            bias_sq += sums[1 + 3 * l + BIAS_SQ, 0]
        total = sums[0, 0] / m
        if l2 != 0:
            total += 0.5 * l2 * weight_sq
        code = OK
        if not math.isfinite(params.dtype.type(total)):  # in the model's precision
            code = NONFINITE_LOSS
        elif not (math.isfinite(grad_sq) and math.isfinite(bias_sq)):
            code = NONFINITE_GRADIENT
        if tid == 0:
            if code == OK:
                status[STEPS_DONE] += 1
                epoch_stats[epoch, 0] += total * m
                for l in range(n_layers):
                    epoch_stats[epoch, 1 + l] += math.sqrt(sums[1 + 3 * l + GRAD_SQ, 0])
            elif status[STATUS] == OK:
                status[STATUS] = code
        cuda.syncthreads()  # every thread has read sums before the next step refills it
        return code == OK

    @cuda.jit(cache=config.CUDA_CACHE)
    def fused_steps(params, grads, moment1, moment2, status, epoch_stats, x, targets, perms,
                    layers, hyper, optimizer, n_weights, loss, l2, batch_size,
                    n_batches, per_epoch, first_epoch, first_batch, first_step, n_steps):
        """n_steps steps from batch first_batch of epoch first_epoch; epoch first_epoch + e
        reads rows perms[e] (perms[0] throughout unless per_epoch); first_step is the
        optimizer's step count before the launch."""
        dtype = params.dtype
        shared_params = cuda.shared.array(params_size, dtype)
        shared_grads = cuda.shared.array(params_size, dtype)
        shared_moment1 = cuda.shared.array(moment_size, dtype)
        shared_moment2 = cuda.shared.array(moment_size, dtype)
        acts = cuda.shared.array(acts_size, dtype)
        logits = cuda.shared.array((rows, n_outputs), dtype)
        outputs = cuda.shared.array((rows, n_outputs), dtype)
        tbatch = cuda.shared.array((rows, n_outputs), dtype)
        tile_a = cuda.shared.array((rows, max_width), dtype)
        tile_b = cuda.shared.array((rows, max_width), dtype)
        row_losses = cuda.shared.array(rows, epoch_stats.dtype)
        sums = cuda.shared.array((n_sums, n_threads), epoch_stats.dtype)
        tid = cuda.threadIdx.x
        if tid == 0:
            sums[0, 0] = status[STATUS]
        cuda.syncthreads()
        if sums[0, 0] != OK:  # an earlier step failed: change nothing
            return
        n_params = params.shape[0]
        for i in range(tid, n_params, n_threads):
            shared_params[i] = params[i]
            if moments_shared:
                shared_moment1[i] = moment1[i]
                shared_moment2[i] = moment2[i]
        m1, m2 = moment1, moment2
        if moments_shared:
            m1, m2 = shared_moment1, shared_moment2
        n = x.shape[0]
        width = n_inputs + n_outputs
        output_activation = layers[last, ACTIVATION]
        epoch = first_epoch
        b = first_batch
        for step in range(n_steps):
            start = b * batch_size
            m = min(batch_size, n - start)
            perm_row = epoch - first_epoch if per_epoch else 0
            # The last step's readers of the inputs and targets (the backward pass, the
            # loss) passed barriers since: the gather may overwrite them.
            for idx in range(tid, m * width, n_threads):
                r = idx // width
                c = idx - r * width
                source = perms[perm_row, start + r]
                if c < n_inputs:
                    acts[r * n_inputs + c] = x[source, c]
                else:
                    tbatch[r, c - n_inputs] = targets[source, c - n_inputs]
            cuda.syncthreads()  # the batch, and the last update's parameters, are in
            forward(acts, logits, shared_params, layers, m, tid)
            for r in range(tid, m, n_threads):  # loss and output delta, a thread per row
                output_row(outputs, logits, r, output_activation)
                row_losses[r] = row_loss(outputs, logits, tbatch, r, loss)
                delta_row(tile_a, outputs, tbatch, r, 1.0 / m, loss, output_activation)
            cuda.syncthreads()
            backward(shared_grads, tile_a, tile_b, acts, shared_params, layers, m, tid)
            # The norms' reads of the weights end before verdict's reduction, so once it
            # returns the update may overwrite them.
            if not verdict(sums, status, epoch_stats, row_losses, shared_grads,
                           shared_params, layers, m, epoch, l2, tid):
                break  # every thread has the same verdict: the block stops together
            step_size = 0.0
            correction = 1.0
            if optimizer == ADAM or optimizer == ADAMW:  # as optim.adam_scalars
                t = float64(first_step + step + 1)
                step_size = hyper[LR] / (1.0 - math.pow(hyper[BETA1], t))
                correction = math.sqrt(1.0 - math.pow(hyper[BETA2], t))
            for i in range(tid, n_params, n_threads):
                update_parameter(shared_params, shared_grads, m1, m2, i, hyper, optimizer,
                                 n_weights, l2, step_size, correction)
            b += 1
            if b == n_batches:
                b = 0
                epoch += 1
        cuda.syncthreads()
        for i in range(tid, n_params, n_threads):
            params[i] = shared_params[i]
            grads[i] = shared_grads[i]
            if moments_shared:
                moment1[i] = shared_moment1[i]
                moment2[i] = shared_moment2[i]

    return fused_steps


class StepsRun:
    """The host side of one fit's multi-step launches (a CudaRun's, whose cursor, row
    permutation and shuffling RNG it advances exactly as the one-launch-per-step loop does).

    Without shuffling the permutation never changes: the trainer's copy on the device
    serves every launch, and nothing is sent per launch. With shuffling, each launch first
    shuffles every epoch it starts, in order, into a pinned staging buffer (two, used in
    turn, so the host fills one while the device copies or reads the other) and queues one
    copy of those rows; perms has room for the epochs of a full launch.
    """

    def __init__(self, trainer, shape, optimizer):
        """optimizer: the optimizer's code (optimizers.SGD_CODE, ...)."""
        cuda = device.cuda_module()
        self.trainer = trainer
        self.optimizer = optimizer
        self.kernel = kernel(shape)
        self.threads = shape.n_threads
        self.launches = 0
        self.shuffles = trainer.shuffle_rows and trainer.batch_size < trainer.n
        n, n_batches = trainer.n, trainer.n_batches
        self.steps_per_launch = max(1, config.CUDA_FUSED_STEPS_PER_LAUNCH)
        if not self.shuffles:
            self.slots = 1
            self.perms = trainer.perm_device.reshape(1, n)
            return
        # A launch of steps_per_launch steps starting anywhere in an epoch touches at most
        # this many epochs; fewer slots (a byte budget) shorten the launches instead.
        touched = (n_batches - 1 + self.steps_per_launch - 1) // n_batches + 1
        self.slots = max(1, min(touched, config.CUDA_FUSED_PERM_BYTES // (8 * n)))
        self.perms = device.empty((self.slots, n), np.int64)
        self.stream = cuda.default_stream()  # the kernels' stream: copies queue in order
        self.staging = [cuda.pinned_array((self.slots, n), np.int64) for _ in range(2)]
        self.events = [cuda.event() for _ in range(2)]
        self.used = [False, False]
        self.turn = 0

    def _send_permutations(self, epoch_start, epochs):
        """Shuffle the trainer's permutation into row k of the next staging buffer for each
        of `epochs` epochs (the first only if epoch_start: a launch that begins mid-epoch
        reuses that epoch's), then queue the copy of those rows."""
        t, k = self.trainer, self.turn
        if self.used[k]:
            self.events[k].synchronize()  # its previous copy has run
        staging = self.staging[k]
        for e in range(epochs):
            if e > 0 or epoch_start:
                shuffle(t.perm, t.rng)  # in place, from the previous epoch's, as on the CPU
            staging[e] = t.perm
        self.perms[:epochs].copy_to_device(staging[:epochs], stream=self.stream)
        self.events[k].record(self.stream)
        self.used[k] = True
        self.turn = 1 - k

    def launch_steps(self, n_steps):
        """Queue launches for n_steps steps from the trainer's cursor, advancing it."""
        t = self.trainer
        dws, n_batches = t.dws, t.n_batches
        queued = 0
        while queued < n_steps:
            epoch, b = t.at()
            steps = min(n_steps - queued, self.steps_per_launch)
            if self.shuffles:  # every epoch it touches needs a permutation slot
                steps = min(steps, self.slots * n_batches - b)
            epochs = (b + steps - 1) // n_batches + 1
            if self.shuffles:
                self._send_permutations(b == 0, epochs)
            self.kernel[1, self.threads](
                dws.params, dws.grads, dws.moment1, dws.moment2, dws.status, dws.epoch_stats,
                t.x, t.t, self.perms, dws.table, dws.hyper, self.optimizer,
                dws.spec.n_weights, t.loss, t.l2, t.batch_size, n_batches, self.shuffles,
                epoch, b,
                dws.opt_step + queued, steps)
            self.launches += 1
            queued += steps
            end = b + steps
            t.move_to(epoch + end // n_batches, end % n_batches)
