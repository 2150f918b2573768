"""The two layouts of a generated kernel timed against each other (config.
SPECIALIZE_COLUMNS_MIN_BATCH): for each batch size, the rows and the columns kernel train the
same network in one process, alternated round by round, and each keeps its best round.

    python -m fastmlp.bench.layouts WORKLOAD BATCH [BATCH ...] [--rounds 5] [--steps 300000]

WORKLOAD is xor, x2, or a small net written N-H-O (tanh hidden units, softmax outputs,
cross-entropy, Adam). Prints ns a step spent in the kernel (History.seconds) for each
(batch, layout). Pin it to one core (taskset -c 0): the two layouts run one thread either way.
"""
import argparse
import math
import time

from .. import config
from .rates import generated_kernels
from .workloads import WORKLOADS, Workload

_LAYOUT_THRESHOLD = {"rows": 1 << 30, "columns": 1}


def workload(name):
    if name in WORKLOADS:
        return WORKLOADS[name]
    n_in, hidden, n_out = (int(v) for v in name.split("-"))
    return Workload(name=name, n_inputs=n_in, layers=((hidden, "tanh"), (n_out, "softmax")),
                    loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=4)


def time_layouts(w, batch, rounds, steps):
    """{layout: best ns a step} for one batch size."""
    X, y = w.make_data(max(64, 4 * batch))
    per_epoch = math.ceil(len(X) / batch)
    epochs = max(1, steps // per_epoch)
    models, best = {}, {}
    saved = config.SPECIALIZE_COLUMNS_MIN_BATCH
    try:
        with generated_kernels():
            for layout in _LAYOUT_THRESHOLD:  # compile (or load) both first
                config.SPECIALIZE_COLUMNS_MIN_BATCH = _LAYOUT_THRESHOLD[layout]
                models[layout] = w.build(seed=0)
                models[layout].fit(X, y, epochs=2, batch_size=batch, progress=False)
                best[layout] = math.inf
            for _ in range(rounds):
                for layout, model in models.items():
                    config.SPECIALIZE_COLUMNS_MIN_BATCH = _LAYOUT_THRESHOLD[layout]
                    history = model.fit(X, y, epochs=epochs, batch_size=batch, progress=False)
                    ns = history.seconds.sum() / (epochs * per_epoch) * 1e9
                    best[layout] = min(best[layout], ns)
    finally:
        config.SPECIALIZE_COLUMNS_MIN_BATCH = saved
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp.bench.layouts",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("workload")
    parser.add_argument("batches", nargs="+", type=int)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300_000)
    args = parser.parse_args(argv)
    w = workload(args.workload)
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), w.name)
    for batch in args.batches:
        best = time_layouts(w, batch, args.rounds, args.steps)
        print(f"batch {batch:4d}: rows {best['rows']:9.1f} ns  columns {best['columns']:9.1f} ns")


if __name__ == "__main__":
    main()
