"""summary(model): a per-layer table (shapes, parameters, activation), totals, and the FLOPs
of one training step, as Keras's Model.summary and torchinfo print them."""


def _count(n):
    return f"{n:,}"


def summary(model, batch_size=32):
    """The table as a string. Shapes show the batch as "batch"; FLOPs are counted for a
    training step on `batch_size` rows (forward, weight gradients, hidden-layer deltas)."""
    rows = [("layer", "input", "output", "activation", "parameters")]
    n_in = model.n_inputs
    total = 0
    for l, (size, activation) in enumerate(model.layers):
        params = n_in * size + size
        total += params
        rows.append((f"{l}: dense", f"(batch, {n_in})", f"(batch, {size})", activation,
                     _count(params)))
        n_in = size
    widths = [max(len(r[i]) for r in rows) for i in range(5)]

    def line(row):
        cells = [c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(rows[0]))
    size = total * model.dtype.itemsize
    size = f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size / 1024:,.1f} KiB"
    flops = model.spec.flops_per_step(batch_size)
    out = [f"MLP: {model.n_inputs} inputs -> {model.layers[-1][0]} outputs, loss "
           f"{model.loss_name}, {model.dtype.name}, {model.optimizer!r}",
           rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule,
           f"parameters: {_count(total)} ({size} in {model.dtype.name})",
           f"FLOPs per training step: {flops / 1e6:,.3f} MFLOP at batch size {batch_size} "
           f"({flops // batch_size:,} per row)"]
    return "\n".join(out)
