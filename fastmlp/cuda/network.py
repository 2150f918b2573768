"""Whole-network launch sequences over a DeviceWorkspace, built once per batch size.

A plan is a list of Launches whose arguments are device views of the workspace's flat
buffers, made once; replaying it is a loop of kernel launches, with no allocation and no
host<->device copy. Launches per training step (L layers):

    tiled:  gather_rows, L x dense_forward, loss_forward_backward, L x dense_backward
            (dW + db + dinp in one grouped launch), optimizer_step      = 2L + 3
    fused:  fused_step                                                  = 1
"""
from .. import config
from ..core.activations import IDENTITY
from ..core.optimizers import LR
from ..core.spec import ACTIVATION
from . import fused as fused_kernels
from . import optim
from .dense import (Launch, activation_forward_launch, blocks, dense_backward_launch,
                    dense_forward_launch, matmul_forward_launch)
from .elementwise import gather_rows
from .loss import loss_forward_backward, loss_forward_kernel, weighted_loss_forward_backward


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


def network_backward(dws, x, targets, m, loss, l2, weighting=None):
    """Forward pass, fused loss/output delta, then every layer's dense_backward: fills grads
    with the data gradient (no l2 term, as on the CPU), row_losses[:m] and tile_sums (whose
    gradient squares include the l2 term: the norms the optimizer records).

    weighting: None, or (weights, perm, start, inv_weight_sum) for a weighted batch (the
    arguments of loss.weighted_loss_forward_backward; its last two come last in the
    launch's args, so that a plan can replace them per step)."""
    launches, logits = network_forward(dws, x, m)
    spec = dws.spec
    last = len(spec.layers) - 1
    outputs = dws.layer_rows(dws.acts, last, m)
    dout = dws.layer_rows(dws.deltas, last, m)
    threads = config.CUDA_THREADS
    if weighting is None:
        launches.append(Launch(loss_forward_backward, blocks(m, threads), threads,
                               (dout, dws.row_losses[:m], outputs, logits, targets, 1.0 / m,
                                loss, _layer_code(dws, last))))
    else:
        weights, perm, start, inv_weight_sum = weighting
        launches.append(Launch(weighted_loss_forward_backward, blocks(m, threads), threads,
                               (dout, dws.row_losses[:m], outputs, logits, targets, weights,
                                perm, loss, _layer_code(dws, last), start, inv_weight_sum)))
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
    """The launches of one training step on batches of m rows; `launch` replays them.

    weights: None, or the device array of sample weights read through perm (a weighted
    plan: the loss kernel gets each step's start and 1/sum(w) at launch). fused: whether
    to use the fused kernel (the workspace's choice; the CudaRun turns it off for weighted
    and scheduled fits and for a per-step l2, which the fused kernel does not take).
    """

    def __init__(self, dws, x, targets, perm, m, loss, optimizer, l2, weights=None,
                 fused=None):
        self.dws = dws
        self.m = m
        self.optimizer = optimizer
        self.l2 = l2
        self.fused = dws.fused if fused is None else fused
        self.weighted = weights is not None
        spec = dws.spec
        if self.fused:
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
        weighting = None if weights is None else (weights, perm, 0, 1.0)
        self.body = network_backward(dws, xb, tb, m, loss, l2, weighting)
        self.loss_at = len(spec.layers)  # the body: L forward launches, the loss, L backward
        n_params = spec.n_params
        self.update = (optim.kernels(threads)[0],
                       max(1, min(config.CUDA_OPTIMIZER_BLOCKS, blocks(n_params, threads))),
                       threads,
                       (dws.params, dws.grads, dws.moment1, dws.moment2, dws.status,
                        dws.epoch_stats, dws.row_losses[:m], dws.tile_sums, dws.layer_tiles,
                        dws.hyper, optimizer, spec.n_weights, m))

    @property
    def launches_per_step(self):
        return 1 if self.fused else len(self.body) + 2

    def launch(self, start, epoch, step, hyper, lr=None, weight_sum=None, l2=None):
        """One training step on rows perm[start:start+m], counted in epoch; `step` is the
        1-based optimizer step (for Adam's bias corrections). lr: the step's rate (None:
        hyper's); weight_sum: the batch's weight sum (weighted plans; m otherwise); l2:
        this step's l2 coefficient (None: the plan's). The fused kernel takes neither."""
        lr = hyper[LR] if lr is None else lr
        step_size, correction = optim.adam_scalars(hyper, self.optimizer, step, lr)
        if self.fused:
            self.kernel[self.grid, self.block](*self.head, start, *self.tail, epoch,
                                               step_size, correction)
            return
        weight_sum = float(self.m) if weight_sum is None else weight_sum
        l2 = self.l2 if l2 is None else l2
        kernel, grid, block, args = self.gather
        kernel[grid, block](*args, start)
        for i, launch in enumerate(self.body):
            if i == self.loss_at and self.weighted:
                launch.kernel[launch.grid, launch.block](*launch.args[:-2], start,
                                                         1.0 / weight_sum)
            elif i > self.loss_at and l2 != self.l2:  # dense_backward: l2 is its last
                launch.kernel[launch.grid, launch.block](*launch.args[:-1], l2)
            else:
                launch()
        kernel, grid, block, args = self.update
        kernel[grid, block](*args, l2, epoch, lr, weight_sum, step_size, correction)
