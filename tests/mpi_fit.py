"""Run by tests/test_mpi.py as `mpiexec -n 2 python -m mpi4py -m tests.mpi_fit CASE OUTDIR`:
each rank trains through MLP.fit(..., comm=MPI.COMM_WORLD) and writes what it ended with to
OUTDIR/<name>-rank<r>.npz, for the test to compare with the other rank and with one process.

The cases (build_model, data and FITS) are imported by the test too, so both sides train
exactly the same thing. Ranks build their models from different seeds: rank 0's weights, which
it broadcasts, are those of seed SEED.
"""
import os
import sys

import numpy as np

import fastmlp

SEED = 7
N_INPUTS, LAYERS = 5, [(16, "tanh"), (8, "relu"), (3, "softmax")]  # 232 weights: the generic
# kernels (cpu/steps.py), not a generated one

#: name -> (optimizer, l2, rows, batch_size, epochs). Every batch splits across 2 ranks; 37
#: rows in batches of 8 end on a 5-row batch (3 + 2 rows) and 9 in 4 on a 1-row batch (one
#: rank takes none).
FITS = {
    "momentum": (lambda: fastmlp.SGD(lr=0.05, momentum=0.9), 1e-3, 37, 8, 4),
    "adam": (lambda: fastmlp.Adam(lr=0.01), 1e-2, 37, 8, 4),
    "nesterov-one-row": (lambda: fastmlp.SGD(lr=0.05, momentum=0.5, nesterov=True), 0.0, 9,
                         4, 3),
}


def build_model(optimizer, l2, seed=SEED):
    return fastmlp.MLP(N_INPUTS, LAYERS, optimizer=optimizer, l2=l2, dtype="float64",
                       seed=seed)


def data(rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, N_INPUTS))
    y = rng.integers(0, 3, rows)
    return X, y


def validation():
    return data(11, seed=1)


def poisoned_regression(seed=SEED):
    """A regression model, and 40 rows whose 30th has a target of 1e300: the squared error of
    that row's batch overflows, on the one rank that takes the row."""
    model = fastmlp.MLP(N_INPUTS, LAYERS[:-1] + [(1, "identity")], optimizer=fastmlp.SGD(lr=0.01),
                        dtype="float64", seed=seed)
    X, _ = data(40)
    y = X.sum(axis=1)
    y[29] = 1e300
    return model, X, y


def flat_weights(model):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in model.get_weights()])


def main(case, outdir):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

    def write(name, **arrays):
        np.savez(os.path.join(outdir, f"{name}-rank{rank}.npz"), **arrays)

    if case == "fits":
        for name, (optimizer, l2, rows, batch_size, epochs) in FITS.items():
            model = build_model(optimizer(), l2, seed=SEED + 1000 * rank)
            X, y = data(rows)
            # With a bar (rank 0 only) rank 0 sizes its calls by its clock, rank 1 by
            # whole epochs: the ranks must still run the same steps between collectives.
            h = model.fit(X, y, epochs=epochs, batch_size=batch_size,
                          validation_data=validation(), progress=name == "adam", comm=comm)
            write(name, weights=flat_weights(model), loss=h.loss, val_loss=h.val_loss,
                  grad_norms=h.grad_norms)
    elif case == "failures":
        model, X, y = poisoned_regression(seed=SEED + 1000 * rank)
        try:
            model.fit(X, y, epochs=3, batch_size=8, progress=False, comm=comm)
            message = "no error"
        except FloatingPointError as exc:
            message = f"FloatingPointError: {exc}"
        write("nonfinite", weights=flat_weights(model), message=np.array(message))
        # Different data on each rank: refused on both, before any step.
        X, y = data(20, seed=rank)
        try:
            model.fit(X, y, epochs=1, batch_size=4, progress=False, comm=comm)
            message = "no error"
        except ValueError as exc:
            message = f"ValueError: {exc}"
        write("mismatch", message=np.array(message))
        # One label, then one feature, changed on rank 1 alone, in a row that 64 evenly
        # spaced rows of 200 miss (row 1): refused on both ranks too.
        for name, column in (("one_label", None), ("one_feature", 2)):
            X, y = data(200, seed=0)
            if rank == 1:
                if column is None:
                    y[1] = (y[1] + 1) % 3
                else:
                    X[1, column] += 1e-9
            try:
                model.fit(X, y, epochs=1, batch_size=4, progress=False, comm=comm)
                message = "no error"
            except ValueError as exc:
                message = f"ValueError: {exc}"
            write(name, message=np.array(message))
        # A stop asked for on rank 1 alone is seen by both.
        from fastmlp.cpu.mpi import MpiBackend
        from fastmlp.fit.plan import plan_for
        X, y = data(20, seed=0)
        run = MpiBackend(model.backend, comm).start(plan_for(model, X, y, epochs=1,
                                                             batch_size=4))
        write("any_rank", stops=np.array([run.agree_to_stop(rank == 1),
                                          run.agree_to_stop(False)]))
        from fastmlp.cpu.mpi import launched_comm
        write("launched", size=np.array(launched_comm().Get_size()))
    else:
        raise SystemExit(f"unknown case {case!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
