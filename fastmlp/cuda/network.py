"""Whole-network launch sequences over a DeviceWorkspace, built once per batch size.

A plan is a list of Launches whose arguments are device views of the workspace's flat
buffers, made once; replaying it is a loop of kernel launches, with no allocation and no
host<->device copy. Launches per training step (L layers):

    tiled:  gather_rows, L x dense_forward, loss_forward_backward, L x dense_backward
            (dW + db + dinp in one grouped launch), optimizer_step      = 2L + 3
    fused:  fused_step                                                  = 1
"""
from .. import config
from ..activations import IDENTITY
from ..spec import ACTIVATION
from . import fused as fused_kernels
from . import optim
from .dense import (Launch, activation_forward_launch, blocks, dense_backward_launch,
                    dense_forward_launch, matmul_forward_launch)
from .elementwise import gather_rows
from .loss import loss_forward_backward, loss_forward_kernel


def _layer_code(dws, l):
    return int(dws.spec.table[l, ACTIVATION])


def hidden_forward(dws, x, m):
    """Launches of the hidden layers' forward pass of x (m, n_inputs); returns them and the
    last hidden layer's activations (x itself if there is none)."""
    launches = []
    inp = x
    for l in range(len(dws.spec.layers) - 1):
        out = dws.layer_rows(dws.acts, l, m)
        launches.append(dense_forward_launch(out, inp, dws.weights(l),
                                             dws.bias(l), _layer_code(dws, l), dws.tile))
        inp = out
    return launches, inp


def network_forward(dws, x, m):
    """Launches of the forward pass of x up to the output layer's logits (bias added), which
    the training step's loss_forward_backward turns into outputs; returns (launches, logits)."""
    launches, inp = hidden_forward(dws, x, m)
    last = len(dws.spec.layers) - 1
    logits = dws.logits[:m]
    launches.append(dense_forward_launch(logits, inp, dws.weights(last),
                                         dws.bias(last), IDENTITY, dws.tile))
    return launches, logits


def network_output(dws, x, m):
    """Forward pass with the output activation applied: returns (launches, outputs). The
    output layer runs as on the CPU: logits = inp @ W, then activation_forward adds the bias
    and applies the (possibly row-wise) activation."""
    launches, inp = hidden_forward(dws, x, m)
    last = len(dws.spec.layers) - 1
    logits = dws.logits[:m]
    outputs = dws.layer_rows(dws.acts, last, m)
    launches.append(matmul_forward_launch(logits, inp, dws.weights(last), dws.tile))
    launches.append(activation_forward_launch(outputs, logits, dws.bias(last),
                                              _layer_code(dws, last)))
    return launches, outputs


def network_loss(dws, x, targets, m, loss):
    """Forward pass, then each row's loss into row_losses[:m]."""
    launches, outputs = network_output(dws, x, m)
    threads = config.CUDA_THREADS
    launches.append(Launch(loss_forward_kernel, blocks(m, threads), threads,
                           (dws.row_losses[:m], outputs, dws.logits[:m], targets, loss)))
    return launches


def network_backward(dws, x, targets, m, loss, l2):
    """Forward pass, fused loss/output delta, then every layer's dense_backward: fills grads
    with the data gradient (no l2 term, as on the CPU), row_losses[:m] and tile_sums (whose
    gradient squares include the l2 term: the norms the optimizer records)."""
    launches, logits = network_forward(dws, x, m)
    spec = dws.spec
    last = len(spec.layers) - 1
    outputs = dws.layer_rows(dws.acts, last, m)
    dout = dws.layer_rows(dws.deltas, last, m)
    threads = config.CUDA_THREADS
    launches.append(Launch(loss_forward_backward, blocks(m, threads), threads,
                           (dout, dws.row_losses[:m], outputs, logits, targets, 1.0 / m, loss,
                            _layer_code(dws, last))))
    for l in range(last, -1, -1):
        if l > 0:
            inp = dws.layer_rows(dws.acts, l - 1, m)
            dinp = dws.layer_rows(dws.deltas, l - 1, m)
            inp_activation = _layer_code(dws, l - 1)
        else:
            inp, dinp, inp_activation = x, dout, IDENTITY  # the input layer needs no delta
        launches.append(dense_backward_launch(
            dinp, dws.weights(l, dws.grads), dws.bias(l, dws.grads), dout, inp,
            dws.weights(l), inp_activation, l > 0, l2, dws.tile_sums[l],
            dws.tile))
        dout = dinp
    return launches


class StepPlan:
    """The launches of one training step on batches of m rows; `launch` replays them."""

    def __init__(self, dws, x, targets, perm, m, loss, optimizer, l2):
        self.dws = dws
        self.m = m
        self.optimizer = optimizer
        self.l2 = l2
        spec = dws.spec
        if dws.fused:
            max_width, block_rows, threads = dws.fused_shape
            last = len(spec.layers) - 1
            self.kernel = fused_kernels.kernel(*dws.fused_shape)
            self.grid = blocks(m, block_rows)
            self.block = threads
            self.head = (dws.params, dws.grads, dws.moment1, dws.moment2, dws.status,
                         dws.epoch_stats, dws.row_losses, dws.tile_sums, dws.partials,
                         dws.counter, dws.acts, dws.xbatch, dws.tbatch, dws.logits,
                         dws.layer_rows(dws.acts, last, dws.rows),
                         dws.layer_rows(dws.deltas, last, dws.rows), x, targets, perm)
            self.tail = (dws.table, dws.rows, dws.layer_ones, dws.hyper, optimizer,
                         spec.n_weights, loss, l2, m)
            self.body = []
            return
        threads = config.CUDA_THREADS
        xb, tb = dws.xbatch[:m], dws.tbatch[:m]
        self.gather = (gather_rows, blocks(m * (xb.shape[1] + tb.shape[1]), threads), threads,
                       (xb, tb, x, targets, perm))
        self.body = network_backward(dws, xb, tb, m, loss, l2)
        n_params = spec.n_params
        self.update = (optim.kernels(threads)[0],
                       max(1, min(config.CUDA_OPTIMIZER_BLOCKS, blocks(n_params, threads))),
                       threads,
                       (dws.params, dws.grads, dws.moment1, dws.moment2, dws.status,
                        dws.epoch_stats, dws.row_losses[:m], dws.tile_sums, dws.layer_tiles,
                        dws.hyper, optimizer, spec.n_weights, l2, m))

    @property
    def launches_per_step(self):
        return 1 if self.dws.fused else len(self.body) + 2

    def launch(self, start, epoch, step, hyper):
        """One training step on rows perm[start:start+m], counted in epoch; `step` is the
        1-based optimizer step (for Adam's bias corrections)."""
        step_size, correction = optim.adam_scalars(hyper, self.optimizer, step)
        if self.dws.fused:
            self.kernel[self.grid, self.block](*self.head, start, *self.tail, epoch,
                                               step_size, correction)
            return
        kernel, grid, block, args = self.gather
        kernel[grid, block](*args, start)
        for launch in self.body:
            launch()
        kernel, grid, block, args = self.update
        kernel[grid, block](*args, epoch, step_size, correction)

