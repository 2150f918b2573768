"""Time data-parallel training (docs/scaling.md has the figures and the model fitted to them).

Not an asv benchmark (asv runs one process; this directory has no __init__.py, so asv does
not collect it). Run from the repository root, one BLAS thread per rank, OpenBLAS's slowdown
variables unset:

  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
      python benchmarks/mpi/scaling.py overhead x2 mnist-small mnist-wide
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
      mpiexec -n 2 python -m mpi4py benchmarks/mpi/scaling.py ranks mnist-wide

overhead: in one process, seconds per step of fit() against fit(comm=MPI.COMM_SELF), which runs
  the split step (one compiled call and one Allreduce, over one rank) on the same rows.
allreduce: under mpiexec, seconds per Allreduce by message size (float32 counts as arguments).
batches: in one process, seconds per step against rows per step (a rank's compute).
ranks: under mpiexec, seconds per step of fit(comm=COMM_WORLD), and its two parts measured
  apart: the Allreduce of the gradient buffer alone, and a step's compute on 1/N of the batch.
  With one rank it times fit() without comm.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.getcwd())  # this checkout's fastmlp, run from the repository root

from fastmlp.bench.workloads import WORKLOADS, Workload

EPOCHS = 3
#: A wider net for the model's predictions: 20 M parameters (mnist-wide has 1.9 M).
WORKLOADS = dict(WORKLOADS, **{"wide-4096": Workload(
    "wide-4096", 784, ((4096, "relu"), (4096, "relu"), (10, "softmax")), "cross_entropy",
    "sgd", 0.05, 256)})


def seconds_per_step(model, X, y, batch_size, comm=None, repeats=3):
    """(wall, cpu): the fastest of `repeats` fits of EPOCHS epochs, per step (compile
    excluded). CPU time is this process's: what the step takes on a core of its own, since a
    rank waiting in a collective polls (MPICH does) and so is counted while it waits."""
    steps = EPOCHS * -(-X.shape[0] // batch_size)
    model.fit(X[:2 * batch_size], y[:2 * batch_size], batch_size=batch_size, progress=False,
              comm=comm)  # compiles
    wall = cpu = np.inf
    for _ in range(repeats):
        if comm is not None:
            comm.Barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        model.fit(X, y, epochs=EPOCHS, batch_size=batch_size, progress=False, comm=comm)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall / steps, cpu / steps


def overhead(names, repeats=5):
    from mpi4py import MPI
    for name in names:
        w = WORKLOADS[name]
        X, y = w.make_data(n_samples=max(16 * w.batch_size, 2048))
        alone = seconds_per_step(w.build(), X, y, w.batch_size, repeats=repeats)
        split = seconds_per_step(w.build(), X, y, w.batch_size, comm=MPI.COMM_SELF,
                                 repeats=repeats)
        print(f"{name:12s} one process wall {alone[0] * 1e6:9.1f} cpu {alone[1] * 1e6:9.1f} "
              f"us/step   split step, one rank wall {split[0] * 1e6:9.1f} cpu "
              f"{split[1] * 1e6:9.1f} us/step   overhead (cpu) {(split[1] - alone[1]) * 1e6:8.1f}"
              f" us/step", flush=True)


def ranks(names, repeats=5):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    for name in names:
        w = WORKLOADS[name]
        X, y = w.make_data(n_samples=16 * w.batch_size)
        model = w.build()
        step = seconds_per_step(model, X, y, w.batch_size, comm=comm if size > 1 else None)
        # The parts apart: an Allreduce of the gradient buffer, and a one-process step on a
        # batch of batch_size / size rows (the compute each rank does).
        buf = np.ones(model.spec.n_params + 2, np.float32)
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(repeats * 10):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        reduce = (time.perf_counter() - start) / (repeats * 10)
        share = -(-w.batch_size // size)
        compute = seconds_per_step(w.build(), X, y, share, repeats=repeats)
        figures = np.array(comm.gather((*step, reduce, *compute), root=0))
        if rank == 0:
            wall, cpu, reduce, compute_wall, compute_cpu = figures.max(axis=0)  # the slowest
            print(f"{name:12s} ranks {size}  step wall {wall * 1e3:8.2f} ms cpu "
                  f"{cpu * 1e3:8.2f} ms   allreduce of {buf.nbytes / 1e6:.2f} MB "
                  f"{reduce * 1e3:7.2f} ms   compute on {share} rows wall "
                  f"{compute_wall * 1e3:8.2f} ms cpu {compute_cpu * 1e3:8.2f} ms", flush=True)


def allreduce(sizes=None, repeats=30):
    """Under mpiexec: seconds per in-place Allreduce (SUM, float32) by message size, the
    fastest and the median of `repeats`, each started together after a barrier."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    for n in [int(s) for s in sizes] if sizes else [2, 2 ** 10, 2 ** 14, 2 ** 18, 1863692,
                                                  2 ** 22]:
        buf = np.ones(n, np.float32)
        times = []
        for _ in range(repeats):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        gathered = comm.gather(times, root=0)
        if comm.Get_rank() == 0:
            slowest = np.max(gathered, axis=0)  # a reduction ends when its slowest rank's does
            print(f"allreduce ranks {comm.Get_size()} {buf.nbytes:10d} bytes  fastest "
                  f"{slowest.min() * 1e6:9.1f} us  median {np.median(slowest) * 1e6:9.1f} us",
                  flush=True)


def batches(names):
    """One process: seconds per step against the rows per step, the compute a rank does when
    a batch of batch_size rows is split N ways."""
    for name in names:
        w = WORKLOADS[name]
        for rows in (w.batch_size, w.batch_size // 2, w.batch_size // 4, w.batch_size // 16,
                     w.batch_size // 64):
            X, y = w.make_data(n_samples=4 * rows)
            wall, cpu = seconds_per_step(w.build(), X, y, rows, repeats=2)
            print(f"{name:12s} rows {rows:5d}  step wall {wall * 1e3:9.3f} ms cpu "
                  f"{cpu * 1e3:9.3f} ms", flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    names = sys.argv[2:] or ([] if what == "allreduce" else ["mnist-wide"])
    {"overhead": overhead, "ranks": ranks, "batches": batches,
     "allreduce": allreduce}[what](names)
