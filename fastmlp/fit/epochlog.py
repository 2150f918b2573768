"""The per-epoch record of a fit, in memory bounded whatever the number of epochs.

Up to config.HISTORY_MAX_ENTRIES epochs are kept one entry each. Past that, neighbouring
entries merge in pairs and the stride (epochs per entry) doubles, as often as needed: a fit of
10**7 epochs keeps between HISTORY_MAX_ENTRIES / 2 and HISTORY_MAX_ENTRIES entries of 2**k
epochs each. An entry holds the mean of its epochs' losses, accuracies and gradient norms,
the sum of their seconds and the learning rate of its last epoch. History.epoch_stride says
the stride; History.epochs is always the number of epochs completed.
"""
import numpy as np

from .. import config

MEAN, SUM, LAST = "mean", "sum", "last"
#: Stored chunks a field holds before they are joined into one.
MAX_CHUNKS = 32
#: How each History field merges: losses and norms average, seconds add, the rate is the last.
FIELDS = {"loss": MEAN, "grad_norms": MEAN, "seconds": SUM, "lr": LAST, "val_loss": MEAN,
          "val_accuracy": MEAN}


def _merge(values, stride, rule):
    """Blocks of `stride` consecutive rows of values merged by rule (len(values) is a
    multiple of stride, and stride a power of two unless there is one block)."""
    if stride == 1:
        return values.copy()  # one epoch an entry: nothing to merge (the common case)
    if rule == LAST:
        return values[stride - 1::stride].copy()
    if values.ndim == 2:  # column by column: numpy adds (k, 2) arrays row by row, 20x slower
        return np.stack([_merge(values[:, j], stride, rule) for j in range(values.shape[1])],
                        axis=1)
    if len(values) == stride:  # one block: the partial last entry of a series
        total = values.sum(keepdims=True)
    else:
        # Neighbours added in pairs, log2(stride) times: cheaper at every stride than one
        # strided add per offset or numpy's reduce over a short axis (docs/tuning.md).
        total = values[0::2] + values[1::2]
        while len(total) > len(values) // stride:
            total = total[0::2] + total[1::2]
    return total / stride if rule == MEAN else total


class EpochLog:
    def __init__(self, n_layers, max_entries=None):
        self.max_entries = max_entries or config.HISTORY_MAX_ENTRIES
        self.stride = 1
        self.epochs = 0
        self.shapes = {"grad_norms": (n_layers,)}
        self.stored = {name: [] for name in FIELDS}   # merged entries, chunk by chunk
        self.pending = {name: [] for name in FIELDS}  # epochs not yet a whole entry
        self.interrupted = False
        #: seconds spent compiling (or loading) kernels before the first step, in no epoch
        self.compile_seconds = 0.0

    def add(self, **values):
        """Append k epochs: loss (k,), grad_norms (k, layers), seconds (k,), lr (k,) and,
        when given, val_loss and val_accuracy (k,)."""
        k = len(values["loss"])
        if k == 0:
            return
        self.epochs += k
        for name in FIELDS:
            if name in values and len(values[name]):
                self._take(name, np.asarray(values[name], np.float64))
                if len(self.stored[name]) > MAX_CHUNKS:
                    # An epoch a call (validation, callbacks) adds a chunk an epoch: joined
                    # now and then, so that counting and reading them stays cheap.
                    self.stored[name] = [np.concatenate(self.stored[name])]
        while self._entries() > self.max_entries:
            self._halve()

    def _take(self, name, rows):
        """Append a field's new epochs (rows, never kept as they are: the caller's arrays
        may be views of buffers it reuses)."""
        if self.stride == 1:  # one epoch an entry: a copy of the rows is the entries
            self.stored[name].append(rows.copy())
            return
        if self.pending[name]:
            rows = np.concatenate(self.pending[name] + [rows])
        whole = len(rows) // self.stride * self.stride
        if whole:  # merged straight from the caller's rows: a new array
            self.stored[name].append(_merge(rows[:whole], self.stride, FIELDS[name]))
        self.pending[name] = [rows[whole:].copy()] if whole < len(rows) else []

    def _entries(self):
        return sum(len(c) for c in self.stored["loss"])

    def _halve(self):
        """Merge stored entries in pairs; an odd last entry goes back to pending as
        `stride` epochs, to merge with the epochs that follow: each its mean (the entry's
        share of a sum) or its value (a mean's or a last value's)."""
        for name, rule in FIELDS.items():
            if not self.stored[name]:
                continue
            entries = np.concatenate(self.stored[name])
            pairs = len(entries) // 2 * 2
            self.stored[name] = [_merge(entries[:pairs], 2, rule)]
            if pairs < len(entries):
                odd = entries[pairs:] / self.stride if rule == SUM else entries[pairs:]
                back = np.repeat(odd, self.stride, axis=0)
                self.pending[name] = [back] + self.pending[name]
        self.stride *= 2

    def series(self, name):
        """Entries of a field, the pending epochs merged into a last, partial entry."""
        parts = list(self.stored[name])
        if self.pending[name]:
            rows = np.concatenate(self.pending[name])
            parts.append(_merge(rows, len(rows), FIELDS[name]))
        shape = self.shapes.get(name, ())
        return np.concatenate(parts) if parts else np.zeros((0, *shape))

    def last(self, name):
        """The most recent epoch's value of a field (monitored losses)."""
        if self.pending[name]:
            return float(self.pending[name][-1][-1])
        return float(self.stored[name][-1][-1])
