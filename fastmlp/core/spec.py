"""Layer list -> validated network spec. Every size and offset in the package derives from here.

Parameter layout (one flat buffer): all weight matrices first, layer by layer, each row-major
(n_in, n_out); then all biases. Weights-only operations (L2, AdamW's decay) therefore touch
the prefix ``[0, n_weights)``.

Per-row layout of the activation and delta buffers: layer l's outputs start at column
``width_offset[l]`` of a row of ``total_width`` values; a buffer with room for ``rows`` rows
keeps layer l at ``rows * width_offset[l]`` as a C-contiguous ``(rows, n_out)`` block, so a
kernel views it with a slice and a reshape, never a copy.
"""
from dataclasses import dataclass

import numpy as np

from ..inputs.numbers import check_size
from .activations import ACTIVATIONS, INFERENCE_ONLY, OUTPUT_ONLY, activation_code

# Columns of the integer layer table handed to the kernels.
N_IN, N_OUT, ACTIVATION, W_OFFSET, B_OFFSET, WIDTH_OFFSET = range(6)
TABLE_COLUMNS = 6


@dataclass(frozen=True)
class LayerSpec:
    n_in: int
    n_out: int
    activation: str


class NetworkSpec:
    """A validated MLP architecture: n_inputs features through a list of (size, activation)."""

    def __init__(self, n_inputs, layers):
        n_inputs = check_size(n_inputs, "n_inputs")
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
            raise TypeError("layers must be a list of (size, activation) pairs, e.g. "
                            "[(128, 'relu'), (10, 'softmax')]")
        if len(layers) == 0:
            raise ValueError("layers is empty; give at least the output layer, e.g. "
                             "[(1, 'sigmoid')]")
        specs = []
        n_in = n_inputs
        for i, layer in enumerate(layers):
            if isinstance(layer, (str, bytes)) or not hasattr(layer, "__len__") \
                    or len(layer) != 2:
                raise TypeError(f"layer {i} must be a (size, activation) pair such as "
                                f"(64, 'relu'); got {layer!r}")
            size, activation = layer
            size = check_size(size, f"size of layer {i}")
            activation_code(activation)
            last = i == len(layers) - 1
            if activation in OUTPUT_ONLY and not last:
                raise ValueError(f"layer {i} uses {activation!r}, which is allowed only on "
                                 f"the output layer; use relu, tanh or sigmoid in hidden "
                                 f"layers")
            if activation == "softmax" and size == 1:
                raise ValueError(f"layer {i} is a softmax over 1 unit: its output is always 1 "
                                 f"and its loss always 0, so it cannot learn; for binary "
                                 f"classification use (1, 'sigmoid'), or (2, 'softmax') with "
                                 f"labels 0 and 1")
            specs.append(LayerSpec(n_in, size, activation))
            n_in = size
        self.n_inputs = n_inputs
        self.layers = tuple(specs)
        self._build_table()

    def _build_table(self):
        table = np.zeros((len(self.layers), TABLE_COLUMNS), dtype=np.int64)
        w_off = 0
        width_off = 0
        for l, layer in enumerate(self.layers):
            table[l, N_IN] = layer.n_in
            table[l, N_OUT] = layer.n_out
            table[l, ACTIVATION] = ACTIVATIONS[layer.activation]
            table[l, W_OFFSET] = w_off
            table[l, WIDTH_OFFSET] = width_off
            w_off += layer.n_in * layer.n_out
            width_off += layer.n_out
        self.n_weights = w_off
        b_off = w_off
        for l, layer in enumerate(self.layers):
            table[l, B_OFFSET] = b_off
            b_off += layer.n_out
        self.n_params = b_off
        self.total_width = width_off
        table.setflags(write=False)
        self.table = table

    # -- derived facts -------------------------------------------------------------------
    @property
    def n_outputs(self):
        return self.layers[-1].n_out

    @property
    def output_activation(self):
        return self.layers[-1].activation

    @property
    def max_width(self):
        return max(max(l.n_out for l in self.layers), self.n_inputs)

    def inference_only_layers(self):
        return [i for i, l in enumerate(self.layers) if l.activation in INFERENCE_ONLY]

    def as_list(self):
        """The layer list in the user's form, [(size, activation), ...]."""
        return [(l.n_out, l.activation) for l in self.layers]

    def weight_slice(self, l):
        off = int(self.table[l, W_OFFSET])
        layer = self.layers[l]
        return slice(off, off + layer.n_in * layer.n_out)

    def bias_slice(self, l):
        off = int(self.table[l, B_OFFSET])
        return slice(off, off + self.layers[l].n_out)

    def pairs(self, flat):
        """[(W, b), ...] views of a flat parameter-sized vector, W shaped (n_in, n_out)."""
        return [(flat[self.weight_slice(l)].reshape(layer.n_in, layer.n_out),
                 flat[self.bias_slice(l)]) for l, layer in enumerate(self.layers)]

    def flops_per_step(self, batch):
        """FLOPs of a training step (README, Speed): forward + weight gradients + deltas of all
        but the first layer."""
        macs = [l.n_in * l.n_out for l in self.layers]
        return 2 * batch * (2 * sum(macs) + sum(macs[1:]))

    def __setstate__(self, state):
        # pickle does not keep an array's write flag, and numba types a read-only array
        # apart from a writable one: an unpickled spec with a writable table would compile
        # every kernel afresh.
        self.__dict__.update(state)
        self.table.setflags(write=False)

    def __eq__(self, other):
        return isinstance(other, NetworkSpec) and self.n_inputs == other.n_inputs \
            and self.layers == other.layers

    def __repr__(self):
        return f"NetworkSpec(n_inputs={self.n_inputs}, layers={self.as_list()})"
