"""The source of training kernels for one small architecture, with every size a constant.

For a network with a few dozen weights (xor, y = x^2, |x - 1|), the generic
`steps.train_steps` spends its time on bookkeeping rather than arithmetic: loops whose trip
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
only the sizes and the order of some sums differ. cpu/codegen_step.py writes the module
around a layout's batch code (norms, update); cpu/specialize.py chooses, caches and loads
these modules.
"""
from ..core.activations import ACTIVATIONS, IDENTITY, LEAKY_RELU, RELU, SOFTMAX
from ..core.losses import BINARY_CROSS_ENTROPY, CANONICAL_PAIRS, CROSS_ENTROPY, MSE
from ..core.losses import NAMES as LOSS_NAMES
from ..core.optimizers import VARIANTS  # noqa: F401 (the variants a kernel is written for)
from ..core.spec import B_OFFSET, W_OFFSET
from .codegen_step import (ADAM_VARIANT, ADAMW_VARIANT, MOMENTUM_VARIANT,  # noqa: F401
                           NESTEROV_VARIANT, SGD_VARIANT, check, module_source)

# The two layouts of a generated kernel: ROWS runs each row's forward and backward in scalar
# locals (batches of a few rows), COLUMNS each unit across the batch (config.
# SPECIALIZE_COLUMNS_MIN_BATCH rows or more), in loops LLVM vectorises.
ROWS, COLUMNS = "rows", "columns"

_CANONICAL = frozenset(CANONICAL_PAIRS)

# Inline elementwise forms, written with selects (no basic blocks in numba's IR): the
# column kernel's row loops vectorise only when they hold no call (core/scalars.py's
# functions are calls until LLVM inlines them, too late for its loop vectoriser).
# tests/cpu/test_specialize.py checks them against core/scalars.py. Other codes call it.
INLINE_ACTIVATE = {IDENTITY: "{v}", RELU: "select({v} > zero, {v}, zero)",
                   LEAKY_RELU: "select({v} > zero, {v}, {v} * slope)"}
INLINE_GRAD = {IDENTITY: "{g}", RELU: "select({a} > zero, {g}, zero)",
               LEAKY_RELU: "select({a} > zero, {g}, {g} * slope)"}
#: One element of each loss, inline for the same reason (scalars.squared_error_term and
#: binary_cross_entropy_term; cross_entropy_term is a call: its loop does not vectorise).
INLINE_LOSS_TERM = {MSE: "0.5 * ({a} - {t}) * ({a} - {t})",
                    BINARY_CROSS_ENTROPY: "max({z}, 0.0) - {z} * {t} "
                                          "+ fast_log1p(fast_exp(-abs({z})))"}


def activate_expr(act, v):
    """act(v) as an expression (softmax is done per layer, not here)."""
    if act in INLINE_ACTIVATE:
        return INLINE_ACTIVATE[act].format(v=v)
    return f"activate({v}, {act})"


def grad_expr(act, g, a):
    """g * act'(z) as an expression, written in a = act(z) as activation_grad does."""
    if act in INLINE_GRAD:
        return INLINE_GRAD[act].format(g=g, a=a)
    return f"activation_grad({g}, {a}, {act})"


def _sum(terms):
    return " + ".join(terms) if terms else "zero"


def loss_lines(loss, act, n_out, a, z, t, d, softmax_sums=None):
    """The loss and output-delta code of both layouts, as (loss lines, delta lines), each to
    run inside a loop over the rows: the first adds a row's loss to data_loss (summed in
    float64, as loss_forward does), the second sets its output delta d(j) = dL/dZ. a(j),
    z(j), t(j), d(j) name output j's activation, logit, target and delta in the layout;
    softmax_sums, the names (top, total) of the row's softmax maximum and sum when the
    layout keeps them in locals (its log-sum-exp then reuses them)."""
    lines = []
    if loss in INLINE_LOSS_TERM:
        for j in range(n_out):
            term = INLINE_LOSS_TERM[loss]
            if "{z}" in term:  # the logit read once
                lines.append(f"v{j} = {z(j)}")
            lines.append("data_loss += " + term.format(a=a(j), z=f"v{j}", t=t(j)))
    elif loss == CROSS_ENTROPY:  # on the softmax output: t (lse - z) per output
        if softmax_sums is None:
            lines.append(f"ltop0 = {z(0)}")
            lines += [f"ltop{j} = larger({z(j)}, ltop{j - 1})" for j in range(1, n_out)]
            top = f"ltop{n_out - 1}"
            terms = [f"fast_exp({z(j)} - {top})" for j in range(n_out)]
            lines.append(f"lse = {top} + fast_log({_sum(terms)})")
        else:
            lines.append(f"lse = {softmax_sums[0]} + fast_log({softmax_sums[1]})")
        lines += [f"data_loss += cross_entropy_term({t(j)}, lse, {z(j)})"
                  for j in range(n_out)]
    # g: dL/dA. For the canonical pairs dL/dZ is the same (A - T)/m; the others go through
    # the chain rule (losses.VALID_OUTPUTS leaves only MSE there).
    delta = [f"g{j} = ({a(j)} - {t(j)}) * scale" for j in range(n_out)]
    if (loss, act) in _CANONICAL:
        delta += [f"{d(j)} = g{j}" for j in range(n_out)]
    elif act == SOFTMAX:
        delta.append(f"dot = {_sum([f'g{j} * {a(j)}' for j in range(n_out)])}")
        delta += [f"{d(j)} = {a(j)} * (g{j} - dot)" for j in range(n_out)]
    else:
        delta += [f"{d(j)} = {grad_expr(act, f'g{j}', a(j))}" for j in range(n_out)]
    return lines, delta


def generate_rows_source(spec, loss, variant):
    """The source of a module whose `train_steps` is specialised to the arguments (ROWS)."""
    check(spec, loss, variant)
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
            body += [f"a{l}_{j} = {activate_expr(acts[l], f'z{l}_{j}')}"
                     for j in range(layer.n_out)]
    body += [f"t_{j} = targets[r, {j}]" for j in range(n_out)]
    loss_part, delta_part = loss_lines(
        loss, acts[last], n_out, a=lambda j: f"a{last}_{j}", z=lambda j: f"z{last}_{j}",
        t=lambda j: f"t_{j}", d=lambda j: f"d{last}_{j}",
        softmax_sums=("top", "total") if acts[last] == SOFTMAX else None)
    body += [f"# loss ({LOSS_NAMES[loss]}) and the output layer's delta"]
    body += loss_part + delta_part
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
                g = f"g{l - 1}_{k}"
                body.append(f"{g} = {_sum(terms)}")
                body.append(f"d{l - 1}_{k} = {grad_expr(acts[l - 1], g, f'a{l - 1}_{k}')}")

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
    return module_source(spec, loss, variant, ROWS, batch,
                         docstring="Row by row, in scalar locals.")


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
    check(spec, loss, variant)
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
            lines.append(f"        A{l}[j, i] = {activate_expr(acts[l], v)}")
        if acts[l] == SOFTMAX:  # as activation_forward, row by row across the units
            lines += ["for i in range(m):", "    top0 = Z[0, i]"]
            lines += [f"    top{j} = larger(Z[{j}, i], top{j - 1})"
                      for j in range(1, layer.n_out)]
            lines += [f"    e{j} = fast_exp(Z[{j}, i] - top{layer.n_out - 1})"
                      for j in range(layer.n_out)]
            lines.append(f"    inv = one / ({_sum([f'e{j}' for j in range(layer.n_out)])})")
            lines += [f"    A{l}[{j}, i] = e{j} * inv" for j in range(layer.n_out)]
    loss_part, delta_part = loss_lines(
        loss, acts[last], n_out, a=lambda j: f"A{last}[{j}, i]", z=lambda j: f"Z[{j}, i]",
        t=lambda j: f"TT[{j}, i]", d=lambda j: f"D{last}[{j}, i]")
    lines.append(f"# loss ({LOSS_NAMES[loss]}) and the output layer's delta")
    # two loops: the loss's float64 sum and the delta's stores vectorise apart
    lines += ["data_loss = 0.0", "for i in range(m):"] + ["    " + x for x in loss_part]
    lines += ["for i in range(m):"] + ["    " + x for x in delta_part]
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
                      f"        D{l - 1}[k, i] = {grad_expr(acts[l - 1], g, f'A{l - 1}[k, i]')}"]

    return module_source(spec, loss, variant, COLUMNS, lines, setup=[unpack],
                         extra_argument=", scratch",
                         docstring="Unit by unit across the batch;\n    scratch holds the "
                                   "(units, rows) arrays (codegen.generate_columns_source).")
