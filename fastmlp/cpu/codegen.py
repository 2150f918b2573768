"""The source of training kernels for one small architecture, with every size a constant.

For a network with a few dozen weights (xor, y = x^2, |x - 1|), the generic
`train.train_steps` spends its time on bookkeeping rather than arithmetic: loops whose trip
counts of 1 to 8 LLVM learns only at run time, ~20 array views a step, and a call per layer.
Here the architecture, loss and optimizer are written into the source of a `train_steps` with
the same arguments and the same results, in one of two layouts:

- ROWS (batches of a few rows): each row runs forward, loss and backward in scalar locals
  (`z1_3` is pre-activation 3 of layer 1, `w1_0_3` its weight from input 0); the weights are
  read into locals once per step and the gradients summed in locals over the rows, so the
  row loop touches memory only to read its inputs and targets;
- COLUMNS (config.SPECIALIZE_COLUMNS_MIN_BATCH rows or more): each layer is kept unit by
  unit across the batch, so each statement is a loop over the rows that LLVM vectorises;
- then, in both, constant-bound loops over the flat buffers take the gradient norms and
  apply the update, with the per-element rules of cpu/optim.py.

The formulas are those of the generic kernels (tests compare the two to the last few ulps);
only the sizes and the order of some sums differ. cpu/specialize.py chooses, caches and
loads these modules.
"""
from ..core.activations import (ACTIVATIONS, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX,
        STEP, TANH)
from ..core.activations import NAMES as ACTIVATION_NAMES
from ..core.losses import BINARY_CROSS_ENTROPY, CANONICAL_PAIRS, CROSS_ENTROPY, MSE
from ..core.losses import NAMES as LOSS_NAMES
from ..core.optimizers import VARIANTS
from ..core.spec import ACTIVATION, B_OFFSET, W_OFFSET

# The two layouts of a generated kernel: ROWS runs each row's forward and backward in scalar
# locals (batches of a few rows), COLUMNS each unit across the batch (config.
# SPECIALIZE_COLUMNS_MIN_BATCH rows or more), in loops LLVM vectorises.
ROWS, COLUMNS = "rows", "columns"

# The optimizer variants a kernel is generated for (optimizers.VARIANTS: each optimizer
# names its own); the hyper-parameter values stay inputs.
SGD, MOMENTUM, NESTEROV, ADAM, ADAMW = VARIANTS

_CANONICAL = frozenset(CANONICAL_PAIRS)


def _check(spec, loss, variant):
    """Refuse, before any source is written, a code or variant this generator has no
    branch for: it must not be generated as some other loss, activation or update."""
    if variant not in VARIANTS:
        raise ValueError(f"codegen: no update rule for optimizer variant {variant!r}")
    if loss not in (MSE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY):
        raise ValueError(f"codegen: no branch for loss code {loss!r}")
    known = (IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, STEP, SOFTMAX)
    for l, code in enumerate(spec.table[:, ACTIVATION]):
        if code not in known:
            raise ValueError(f"codegen: no branch for activation code {code} (layer {l})")

def _activation(act, z, a):
    """Lines computing a = act(z) for one unit (softmax is done per layer, not here)."""
    if act == IDENTITY:
        return [f"{a} = {z}"]
    return [f"{a} = activate({z}, {act})  # {ACTIVATION_NAMES[act]}"]


def _derivative(act, d, g, a):
    """Lines setting d = g * act'(z), written in a = act(z) as activation_backward does."""
    if act == IDENTITY:
        return [f"{d} = {g}"]
    return [f"{d} = activation_grad({g}, {a}, {act})  # {ACTIVATION_NAMES[act]}'"]


def _sum(terms):
    return " + ".join(terms) if terms else "zero"


def _describe(spec, loss, variant):
    layers = " -> ".join(f"({l.n_out}, {l.activation})" for l in spec.layers)
    return f"{spec.n_inputs} -> {layers}; loss {LOSS_NAMES[loss]}; optimizer {variant}"


def generate_rows_source(spec, loss, variant):
    """The source of a module whose `train_steps` is specialised to the arguments (ROWS)."""
    _check(spec, loss, variant)
    layers = spec.layers
    last = len(layers) - 1
    w_off = [int(spec.table[l, W_OFFSET]) for l in range(len(layers))]
    b_off = [int(spec.table[l, B_OFFSET]) for l in range(len(layers))]
    acts = [ACTIVATIONS[l.activation] for l in layers]
    n_out = layers[last].n_out

    def w(l, k, j):  # weight from input k to unit j of layer l
        return f"w{l}_{k}_{j}"

    def gw(l, k, j):
        return f"gw{l}_{k}_{j}"

    def inp(l, k):  # unit k of layer l's input
        return f"x_{k}" if l == 0 else f"a{l - 1}_{k}"

    # The row loop. Every name in it but data_loss and the gradient sums is assigned once:
    # numba's SSA pass takes time in proportion to (names assigned more than once) x (length
    # of the block).
    body = [f"x_{k} = x[r, {k}]" for k in range(spec.n_inputs)]
    for l, layer in enumerate(layers):
        body.append(f"# layer {l}: {layer.n_in} -> {layer.n_out}, {layer.activation}")
        for j in range(layer.n_out):
            products = [f"{inp(l, k)} * {w(l, k, j)}" for k in range(layer.n_in)]
            body.append(f"z{l}_{j} = ({_sum(products)}) + b{l}_{j}")
        if acts[l] == SOFTMAX:
            body.append(f"top0 = z{l}_0")
            for j in range(1, layer.n_out):
                body.append(f"top{j} = larger(z{l}_{j}, top{j - 1})")
            body.append(f"top = top{layer.n_out - 1}")
            for j in range(layer.n_out):
                body.append(f"e_{j} = fast_exp(z{l}_{j} - top)")
            body.append(f"total = {_sum([f'e_{j}' for j in range(layer.n_out)])}")
            body.append("inv = one / total")
            body += [f"a{l}_{j} = e_{j} * inv" for j in range(layer.n_out)]
        else:
            for j in range(layer.n_out):
                body += _activation(acts[l], f"z{l}_{j}", f"a{l}_{j}")
    # loss, summed in float64 as loss_forward does
    body.append(f"# loss ({LOSS_NAMES[loss]}) and the output layer's delta")
    body += [f"t_{j} = targets[r, {j}]" for j in range(n_out)]
    if loss == MSE:
        for j in range(n_out):
            body.append(f"diff{j} = a{last}_{j} - t_{j}")
            body.append(f"data_loss += 0.5 * diff{j} * diff{j}")
    elif loss == BINARY_CROSS_ENTROPY:
        for j in range(n_out):
            z = f"z{last}_{j}"
            body.append(f"data_loss += max({z}, 0.0) - {z} * t_{j} "
                        f"+ fast_log1p(fast_exp(-abs({z})))")
    elif loss == CROSS_ENTROPY:  # on the softmax output: log-sum-exp from the softmax's sums
        body.append("lse = top + fast_log(total)")
        for j in range(n_out):
            body.append(f"data_loss += cross_entropy_term(t_{j}, lse, z{last}_{j})")
    canonical = (loss, acts[last]) in _CANONICAL
    dl = "d" if canonical else "g"  # g: dL/dA before the chain rule through the activation
    for j in range(n_out):
        body.append(f"{dl}{last}_{j} = (a{last}_{j} - t_{j}) * scale")
    if not canonical:
        if acts[last] == SOFTMAX:
            body.append(f"dot = {_sum([f'g{last}_{j} * a{last}_{j}' for j in range(n_out)])}")
            for j in range(n_out):
                body.append(f"d{last}_{j} = a{last}_{j} * (g{last}_{j} - dot)")
        else:
            for j in range(n_out):
                body += _derivative(acts[last], f"d{last}_{j}", f"g{last}_{j}", f"a{last}_{j}")
    # backward
    for l in range(last, -1, -1):
        layer = layers[l]
        body.append(f"# backward through layer {l}")
        for k in range(layer.n_in):
            for j in range(layer.n_out):
                body.append(f"{gw(l, k, j)} += {inp(l, k)} * d{l}_{j}")
        for j in range(layer.n_out):
            body.append(f"gb{l}_{j} += d{l}_{j}")
        if l > 0:
            for k in range(layer.n_in):
                terms = [f"d{l}_{j} * {w(l, k, j)}" for j in range(layer.n_out)]
                if acts[l - 1] == IDENTITY:
                    body.append(f"d{l - 1}_{k} = {_sum(terms)}")
                else:
                    body.append(f"g{l - 1}_{k} = {_sum(terms)}")
                    body += _derivative(acts[l - 1], f"d{l - 1}_{k}", f"g{l - 1}_{k}",
                                        f"a{l - 1}_{k}")

    before = []  # before the row loop: weights into locals, gradient sums from zero
    after = []  # after it: the gradient sums into the grads buffer
    for l, layer in enumerate(layers):
        for k in range(layer.n_in):
            for j in range(layer.n_out):
                at = w_off[l] + k * layer.n_out + j
                before += [f"{w(l, k, j)} = params[{at}]", f"{gw(l, k, j)} = zero"]
                after.append(f"grads[{at}] = {gw(l, k, j)}")
        for j in range(layer.n_out):
            before += [f"b{l}_{j} = params[{b_off[l] + j}]", f"gb{l}_{j} = zero"]
            after.append(f"grads[{b_off[l] + j}] = gb{l}_{j}")

    batch = before + ["data_loss = 0.0", "for i in range(m):", "    r = perm[start + i]"]
    batch += ["    " + line for line in body] + after
    return _module(spec, loss, variant, ROWS, batch,
                   docstring="Row by row, in scalar locals.")


# Inline elementwise forms for the column kernel, whose row loops LLVM vectorises only when
# they hold no call (cpu/scalar.py's helpers are calls until LLVM inlines them, too late for
# its loop vectoriser): the formulas of dense.py's loops, written with selects rather than
# conditional expressions, which would add basic blocks to numba's IR. Other codes call
# scalar.py.
_INLINE_ACTIVATE = {IDENTITY: "{v}", RELU: "select({v} > zero, {v}, zero)",
                    LEAKY_RELU: "select({v} > zero, {v}, {v} * slope)"}
_INLINE_GRAD = {IDENTITY: "{g}", RELU: "select({a} > zero, {g}, zero)",
                LEAKY_RELU: "select({a} > zero, {g}, {g} * slope)"}


def _activate_expr(act, v):
    if act in _INLINE_ACTIVATE:
        return _INLINE_ACTIVATE[act].format(v=v)
    return f"activate({v}, {act})"


def _grad_expr(act, g, a):
    if act in _INLINE_GRAD:
        return _INLINE_GRAD[act].format(g=g, a=a)
    return f"activation_grad({g}, {a}, {act})"


def generate_columns_source(spec, loss, variant):
    """Like generate_rows_source, for batches of config.SPECIALIZE_COLUMNS_MIN_BATCH rows or
    more: every layer's values are kept unit by unit across the batch (arrays of shape
    (units, rows), one per layer, in the extra `scratch` argument), so each statement becomes
    a loop over the rows that LLVM vectorises: 8 rows per instruction in float32.

    scratch = (A_0..A_{L-1}, D_0..D_{L-1}, Z, XT, TT): each layer's outputs and deltas, the
    output layer's logits, the batch's inputs and targets, all (units, rows). They are
    separate arrays, not views of one buffer: LLVM vectorises a loop that reads one layer and
    writes the next only when it can tell them apart with a run-time check of two pointers.
    """
    _check(spec, loss, variant)
    layers = spec.layers
    n_layers = len(layers)
    last = n_layers - 1
    w_off = [int(spec.table[l, W_OFFSET]) for l in range(n_layers)]
    b_off = [int(spec.table[l, B_OFFSET]) for l in range(n_layers)]
    acts = [ACTIVATIONS[l.activation] for l in layers]
    n_out = layers[last].n_out

    def A(l):
        return "XT" if l < 0 else f"A{l}"

    unpack = ", ".join([f"A{l}" for l in range(n_layers)] + [f"D{l}" for l in range(n_layers)]
                       + ["Z", "XT", "TT"]) + " = scratch"
    lines = ["for i in range(m):  # gather the batch, transposed",
             "    r = perm[start + i]"]
    lines += [f"    XT[{k}, i] = x[r, {k}]" for k in range(spec.n_inputs)]
    lines += [f"    TT[{j}, i] = targets[r, {j}]" for j in range(n_out)]
    for l, layer in enumerate(layers):
        # Loops over the units (j, k) are left to run, only the sums written out: the
        # source, and numba's compile time, grow with n_in + n_out, not n_in * n_out.
        lines.append(f"# layer {l}: {layer.n_in} -> {layer.n_out}, {layer.activation}")
        terms = [f"{A(l - 1)}[{k}, i] * params[{w_off[l] + k * layer.n_out} + j]"
                 for k in range(layer.n_in)]
        v = f"z{l}"
        lines += [f"for j in range({layer.n_out}):",
                  "    for i in range(m):",
                  f"        {v} = ({_sum(terms)}) + params[{b_off[l]} + j]"]
        if l == last:
            lines.append(f"        Z[j, i] = {v}")
        if acts[l] != SOFTMAX:
            lines.append(f"        A{l}[j, i] = {_activate_expr(acts[l], v)}")
        if acts[l] == SOFTMAX:  # as activation_forward, row by row across the units
            lines += ["for i in range(m):", "    top0 = Z[0, i]"]
            lines += [f"    top{j} = larger(Z[{j}, i], top{j - 1})"
                      for j in range(1, layer.n_out)]
            lines += [f"    e{j} = fast_exp(Z[{j}, i] - top{layer.n_out - 1})"
                      for j in range(layer.n_out)]
            lines.append(f"    inv = one / ({_sum([f'e{j}' for j in range(layer.n_out)])})")
            lines += [f"    A{l}[{j}, i] = e{j} * inv" for j in range(layer.n_out)]
    lines.append(f"# loss ({LOSS_NAMES[loss]}) and the output layer's delta")
    lines += ["data_loss = 0.0", "for i in range(m):"]
    if loss == MSE:
        for j in range(n_out):
            lines += [f"    diff{j} = A{last}[{j}, i] - TT[{j}, i]",
                      f"    data_loss += 0.5 * diff{j} * diff{j}"]
    elif loss == BINARY_CROSS_ENTROPY:
        for j in range(n_out):
            lines += [f"    v{j} = Z[{j}, i]",
                      f"    data_loss += max(v{j}, 0.0) - v{j} * TT[{j}, i] "
                      f"+ fast_log1p(fast_exp(-abs(v{j})))"]
    elif loss == CROSS_ENTROPY:  # log-sum-exp over the row's logits
        lines.append("    ltop0 = Z[0, i]")
        lines += [f"    ltop{j} = larger(Z[{j}, i], ltop{j - 1})" for j in range(1, n_out)]
        top = f"ltop{n_out - 1}"
        terms = [f"fast_exp(Z[{j}, i] - {top})" for j in range(n_out)]
        lines.append(f"    lse = {top} + fast_log({_sum(terms)})")
        lines += [f"    data_loss += cross_entropy_term(TT[{j}, i], lse, Z[{j}, i])"
                  for j in range(n_out)]
    canonical = (loss, acts[last]) in _CANONICAL
    lines.append("for i in range(m):")
    for j in range(n_out):
        lines.append(f"    g{j} = (A{last}[{j}, i] - TT[{j}, i]) * scale")
    if canonical:
        lines += [f"    D{last}[{j}, i] = g{j}" for j in range(n_out)]
    elif acts[last] == SOFTMAX:
        lines.append(f"    dot = {_sum([f'g{j} * A{last}[{j}, i]' for j in range(n_out)])}")
        lines += [f"    D{last}[{j}, i] = A{last}[{j}, i] * (g{j} - dot)" for j in range(n_out)]
    else:
        lines += [f"    D{last}[{j}, i] = {_grad_expr(acts[last], f'g{j}', f'A{last}[{j}, i]')}"
                  for j in range(n_out)]
    for l in range(last, -1, -1):
        layer = layers[l]
        lines.append(f"# backward through layer {l}")
        sums = [f"gw{l}_{j}" for j in range(layer.n_out)]
        lines += [f"for k in range({layer.n_in}):  # dW row k: sums over the rows, all units"]
        lines += [f"    {s} = zero" for s in sums]
        lines += ["    for i in range(m):", f"        x{l} = {A(l - 1)}[k, i]"]
        lines += [f"        {s} += x{l} * D{l}[{j}, i]" for j, s in enumerate(sums)]
        lines += [f"    grads[{w_off[l]} + k * {layer.n_out} + {j}] = {s}"
                  for j, s in enumerate(sums)]
        lines += [f"for j in range({layer.n_out}):",
                  f"    gb{l} = zero",
                  "    for i in range(m):",
                  f"        gb{l} += D{l}[j, i]",
                  f"    grads[{b_off[l]} + j] = gb{l}"]
        if l > 0:  # the previous layer's delta (the input layer needs none)
            terms = [f"D{l}[{j}, i] * params[{w_off[l]} + k * {layer.n_out} + {j}]"
                     for j in range(layer.n_out)]
            g = f"g{l - 1}"
            lines += [f"for k in range({layer.n_in}):",
                      "    for i in range(m):",
                      f"        {g} = {_sum(terms)}",
                      f"        D{l - 1}[k, i] = {_grad_expr(acts[l - 1], g, f'A{l - 1}[k, i]')}"]

    return _module(spec, loss, variant, COLUMNS, lines, setup=[unpack],
                   extra_argument=", scratch",
                   docstring="Unit by unit across the batch;\n    scratch holds the (units, rows) "
                             "arrays (codegen.generate_columns_source).")


def _norm_lines(spec):
    """gradient_norms on the flat buffers: float64 sums, and the finite check."""
    lines = ["finite = True"]
    for l, layer in enumerate(spec.layers):
        lo = int(spec.table[l, W_OFFSET])
        lines += ["sq = 0.0",
                  f"for i in range({lo}, {lo + layer.n_in * layer.n_out}):",
                  "    v = grads[i] + decay * params[i]",
                  "    sq += np.float64(v) * v",
                  f"grad_norms[{l}] = math.sqrt(sq)",
                  "finite = finite and math.isfinite(sq)"]
    return lines + ["sq = 0.0",
                    f"for i in range({spec.n_weights}, {spec.n_params}):",
                    "    sq += np.float64(grads[i]) * grads[i]",
                    "finite = finite and math.isfinite(sq)"]


_TEMPLATE = '''"""Generated by fastmlp.cpu.codegen ({layout}) for: {description}.

Do not edit: the name of this file hashes its text and the kernels it imports.
"""
import math

import numpy as np

from fastmlp.core.activations import LEAKY_SLOPE
from fastmlp.config import jit
from fastmlp.cpu.mathfn import fast_exp, fast_log, fast_log1p, select
from fastmlp.cpu.network import l2_forward
from fastmlp.cpu.optim import (BETA1, BETA2, EPS, LR, MOMENTUM, WEIGHT_DECAY, adam_constants,
                               adam_update, momentum_update, nesterov_update)
from fastmlp.cpu.scalar import activate, activation_grad, cross_entropy_term, larger
from fastmlp.cpu.train import finish_step, next_batch
from fastmlp.core.status import NONFINITE_GRADIENT, NONFINITE_LOSS, OK


@jit
def train_steps(state, fit, x, targets, config, n_steps{extra_argument}):
    """train.train_steps for this architecture: the layer table, loss and optimizer are
    written into the code. {docstring}"""
    params, grads, moment1, moment2 = state.params, state.grads, state.moment1, state.moment2
    opt_step, rng, xbatch, tbatch = state.opt_step, state.rng, state.xbatch, state.tbatch
    perm, cursor, grad_norms = fit.perm, fit.cursor, fit.grad_norms
    epoch_loss, epoch_grad_norm = fit.epoch_loss, fit.epoch_grad_norm
    hyper, l2, n_weights = config.hyper, config.l2, config.n_weights
    batch_size, shuffle_rows = config.batch_size, config.shuffle
    dt = params.dtype.type
    zero, one, slope = dt(0), dt(1), dt(LEAKY_SLOPE)
    decay = dt(l2)
{setup}
    for step in range(n_steps):
        start, m = next_batch(cursor, perm, rng, n, batch_size, shuffle_rows)
        scale = dt(1.0 / m)
{batch}
        total_loss = data_loss / m + l2_forward(params, n_weights, l2)
        if not math.isfinite(dt(total_loss)):
            return NONFINITE_LOSS, step  # nothing updated: the weights are from before it
{norms}
        if not finite:
            return NONFINITE_GRADIENT, step  # nothing updated either
        opt_step[0] += 1
{update}
        finish_step(cursor, epoch_loss, epoch_grad_norm, grad_norms, total_loss, m, n,
                    batch_size)
    return OK, n_steps
'''


def _module(spec, loss, variant, layout, batch, setup=(), extra_argument="", docstring=""):
    """The generated module's source: the template around one layout's batch code (the
    forward, loss and backward of a step, ending with data_loss and the grads buffer set)."""
    def block(lines, level):
        return "\n".join("    " * level + line for line in lines)

    return _TEMPLATE.format(layout=layout, description=_describe(spec, loss, variant),
                            extra_argument=extra_argument, docstring=docstring,
                            setup=block([*setup, "n = x.shape[0]"], 1), batch=block(batch, 2),
                            norms=block(_norm_lines(spec), 2),
                            update=block(_update_lines(variant, spec), 2))


def _update_lines(variant, spec):
    """The optimizer step over the flat buffers: weights layer by layer (l2 and AdamW's decay
    apply), then the biases, as optimizer_step does."""
    segments = [(int(spec.table[l, W_OFFSET]),
                 int(spec.table[l, W_OFFSET]) + layer.n_in * layer.n_out, True)
                for l, layer in enumerate(spec.layers)]
    segments.append((spec.n_weights, spec.n_params, False))
    lines = ["lr = dt(hyper[LR])"]
    if variant in (MOMENTUM, NESTEROV):
        lines.append("momentum = dt(hyper[MOMENTUM])")
    if variant in (ADAM, ADAMW):
        lines += [
            "(step_size, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps,",
            " decay_w) = adam_constants(hyper[LR], hyper[BETA1], hyper[BETA2], hyper[EPS],",
            "                          hyper[WEIGHT_DECAY], opt_step[0], dt)",
        ]
    for lo, hi, is_weights in segments:
        l2 = "decay" if is_weights else "zero"
        lines.append(f"for i in range({lo}, {hi}):")
        lines.append("    p = params[i]")
        lines.append(f"    g = grads[i] + {l2} * p")
        if variant == SGD:
            lines.append("    params[i] = p - lr * g")
        elif variant in (MOMENTUM, NESTEROV):
            rule = "nesterov_update" if variant == NESTEROV else "momentum_update"
            lines.append(f"    params[i], moment1[i] = {rule}(p, g, moment1[i], lr, momentum)")
        elif variant in (ADAM, ADAMW):
            decoupled = variant == ADAMW and is_weights
            lines += [
                "    params[i], moment1[i], moment2[i] = adam_update(",
                "        p, g, moment1[i], moment2[i], step_size, one_minus_beta1, beta2,",
                f"        one_minus_beta2, bias_correction2_sqrt, eps, decay_w, {decoupled})",
            ]
        else:
            raise ValueError(f"codegen: no update rule for optimizer variant {variant!r}")
    return lines
