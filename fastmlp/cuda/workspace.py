"""DeviceWorkspace: the device twin of workspace.Workspace, laid out by the same spec.

The same kinds under the same names (params, grads, moment1, moment2, acts, deltas, logits,
xbatch, tbatch, backup), one device allocation each, plus the few buffers the training step
keeps on the device instead of returning to the host: the status word, the epoch
statistics, the row losses, the per-tile gradient sums and, for the fused kernel, the
per-block gradient partials. Everything is allocated here, when the model moves to the
device or the batch grows; nothing is allocated per step.

The step count stays on the host (the kernels get it as an argument), and so does the
shuffling RNG: the host shuffles with rng.shuffle, exactly as the CPU kernels do.
"""
import numpy as np

from ..core.optimizers import N_HYPER
from ..core.spec import N_OUT, WIDTH_OFFSET
from . import device, fused, gemm


class DeviceWorkspace:
    def __init__(self, host):
        """Copy a host Workspace's parameters and optimizer state to the device."""
        spec = host.spec
        self.spec = spec
        self.dtype = host.dtype
        n = spec.n_params
        n_layers = len(spec.layers)
        # The configuration in force when the workspace was made fixes every launch shape.
        self.tile = gemm.tile_config()
        self.fused = fused.use_fused(spec)
        self.fused_shape = fused.shape(self.dtype.itemsize)
        self.params = device.upload(host.params)
        self.grads = device.zeros(n, self.dtype)
        self.moment1 = device.upload(host.moment1)
        self.moment2 = device.upload(host.moment2)
        self.backup = device.zeros((3, n), self.dtype)
        self.opt_step = int(host.opt_step[0])
        self.backup_step = self.opt_step
        self.table = device.upload(spec.table)
        self.hyper = device.zeros(N_HYPER, np.float64)
        self.status = device.zeros(2, np.int64)          # optim.STATUS, optim.STEPS_DONE
        self.counter = device.zeros(1, np.int32)         # the fused kernel's block ticket
        self.scalar = device.zeros(1, np.float64)        # a reduction's result
        dw_tiles = [gemm.tiles(l.n_in, l.n_out, self.tile)[0] for l in spec.layers]
        self.layer_tiles = device.upload(np.array(dw_tiles, np.int64))
        self.layer_ones = device.upload(np.ones(n_layers, np.int64))
        # (layer, dW tile, (dW^2, W^2, db^2)): dense_backward's partial sums, in float64
        self.tile_sums = device.zeros((n_layers, max(dw_tiles), 3), np.float64)
        self.epoch_stats = None
        self.rows = 0
        self.acts = self.deltas = self.logits = self.xbatch = self.tbatch = None
        self.row_losses = self.partials = None

    def ensure_rows(self, rows):
        """Make the row-sized buffers hold at least `rows` rows (no-op if they already do)."""
        if rows <= self.rows:
            return
        spec = self.spec
        self.rows = rows
        self.acts = device.zeros(rows * spec.total_width, self.dtype)
        self.deltas = device.zeros(rows * spec.total_width, self.dtype)
        self.logits = device.zeros((rows, spec.n_outputs), self.dtype)
        self.xbatch = device.zeros((rows, spec.n_inputs), self.dtype)
        self.tbatch = device.zeros((rows, spec.n_outputs), self.dtype)
        self.row_losses = device.zeros(rows, np.float64)
        if self.fused:
            blocks = -(-rows // self.fused_shape[1])
            self.partials = device.zeros((blocks, spec.n_params), self.dtype)

    def ensure_epochs(self, epochs):
        """epoch_stats[e] = (sum of loss * rows, sum over batches of ||dW_l|| per layer)."""
        shape = (epochs, 1 + len(self.spec.layers))
        if self.epoch_stats is None or self.epoch_stats.shape[0] < epochs:
            self.epoch_stats = device.zeros(shape, np.float64)
        else:
            device.fill(self.epoch_stats, 0)

    # -- named views (device arrays; slicing and reshaping never copies) -----------------
    def layer_rows(self, buf, l, m, rows=None):
        """Layer l's (m, n_out) block of an activation or delta buffer."""
        table = self.spec.table
        n_out = int(table[l, N_OUT])
        off = (self.rows if rows is None else rows) * int(table[l, WIDTH_OFFSET])
        return buf[off:off + m * n_out].reshape(m, n_out)

    def weights(self, l, buf=None):
        """Layer l's (n_in, n_out) weights in params (or in grads, given as buf)."""
        buf = self.params if buf is None else buf
        layer = self.spec.layers[l]
        return buf[self.spec.weight_slice(l)].reshape(layer.n_in, layer.n_out)

    def bias(self, l, buf=None):
        buf = self.params if buf is None else buf
        return buf[self.spec.bias_slice(l)]

    # -- host copies ---------------------------------------------------------------------
    def download(self, host):
        """Copy parameters and optimizer state into a host Workspace of the same spec."""
        self.params.copy_to_host(host.params)
        self.moment1.copy_to_host(host.moment1)
        self.moment2.copy_to_host(host.moment2)
        host.opt_step[0] = self.opt_step

    def upload_params(self, host):
        self.params.copy_to_device(host.params)

    def upload(self, host):
        """Copy parameters and optimizer state from a host Workspace of the same spec."""
        self.params.copy_to_device(host.params)
        self.moment1.copy_to_device(host.moment1)
        self.moment2.copy_to_device(host.moment2)
        self.opt_step = int(host.opt_step[0])

    # -- checkpoints (device to device: nothing crosses to the host) ---------------------
    def save_backup(self):
        self.backup[0].copy_to_device(self.params)
        self.backup[1].copy_to_device(self.moment1)
        self.backup[2].copy_to_device(self.moment2)
        self.backup_step = self.opt_step

    def restore_backup(self):
        self.params.copy_to_device(self.backup[0])
        self.moment1.copy_to_device(self.backup[1])
        self.moment2.copy_to_device(self.backup[2])
        self.opt_step = self.backup_step

    def params_finite(self):
        return bool(np.isfinite(self.params.copy_to_host()).all())

