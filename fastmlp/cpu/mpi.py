"""Data-parallel training over MPI (mpi4py): MLP.fit(..., comm=comm).

Every rank runs the same script on the same data and holds the same model. Each global batch
of batch_size rows is split across the ranks; each rank sums the gradient over its rows, one
in-place Allreduce per step adds the sums up, and every rank applies the same update from the
same reduced sums, so the weights and the optimizer state stay identical without being sent.
Rank 0's weights, optimizer state and shuffling rng are broadcast when each fit begins, so
ranks that built their models from different seeds still agree.

MpiBackend wraps a model's CpuBackend and has the methods training.fit drives (begin_fit,
train_steps, validation_loss, restore_if_overflowed); anything else it is asked for (weights,
inference, the loss of given data) comes from the CPU backend, which computes it identically
on every rank. The compiled halves of a step are in cpu/split.py.

Every collective below is reached by every rank in the same order: the fit's settings and a
fingerprint of its data are compared first (ValueError on every rank if any rank differs,
rather than a hang), each call runs the smallest step count any rank asked for, and a
non-finite loss or gradient is seen after the reduction, so all ranks stop at the same step.
"""
import hashlib
import os

import numpy as np

from . import split
from .network import UNWEIGHTED, l2_forward
from ..core.jitcache import compile_for, is_compiled
from ..core.status import OK
from ..core.workspace import STATE

#: Rows of X, T (and validation data) hashed to check that every rank passes the same data.
FINGERPRINT_ROWS = 64
#: float32 holds every integer up to 2**24 exactly: the row count travels in the model dtype.
MAX_FLOAT32_BATCH = 2 ** 24


def load_mpi():
    """mpi4py.MPI, or an ImportError naming the extra that installs it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("data-parallel training (comm=...) needs mpi4py and an MPI library: "
                          "pip install 'fastmlp[mpi]'") from exc
    return MPI


def check_comm(comm):
    """comm itself if it is an mpi4py intra-communicator; TypeError otherwise."""
    MPI = load_mpi()
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py communicator such as MPI.COMM_WORLD; got "
                        f"{type(comm).__name__}")
    return comm


#: Set for each process by the launchers: MPICH's hydra (and Slurm's PMI), Open MPI, MVAPICH.
WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_comm(environ=None):
    """MPI.COMM_WORLD when this process is one of several that mpiexec (or srun) started,
    else None, without importing mpi4py in a plain run: for a command line tool, such as
    `fastmlp train`, that trains data-parallel when it is launched that way."""
    environ = os.environ if environ is None else environ
    for name in WORLD_SIZE_VARIABLES:
        if environ.get(name, "1").strip() not in ("", "1"):
            return load_mpi().COMM_WORLD
    return None


def fingerprint(X, T):
    """A digest of the shape, dtype and up to FINGERPRINT_ROWS evenly spaced rows of X and T
    (reading a few rows, so that a memory-mapped set is not read whole)."""
    digest = hashlib.blake2b(digest_size=16)
    for a in (X, T):
        n = a.shape[0]
        digest.update(repr((a.shape, a.dtype.str)).encode())
        rows = np.unique(np.linspace(0, n - 1, min(n, FINGERPRINT_ROWS)).astype(np.int64))
        digest.update(np.ascontiguousarray(a[rows]).tobytes())
    return digest.hexdigest()


class MpiBackend:
    """A CpuBackend driven in step with the other ranks of `comm`."""
    device = "cpu"
    #: Each rank's BLAS threads are the launcher's (OPENBLAS_NUM_THREADS: its share of the
    #: node's cores), not config.BLAS_THREADS: training.fit leaves them as they are.
    blas_limit = None

    def __init__(self, backend, comm):
        if getattr(backend, "device", None) != "cpu":
            raise ValueError(f"data-parallel training (comm=...) runs on the CPU; this model "
                             f"is on {getattr(backend, 'device', '?')!r}: call model.to('cpu')")
        self.comm = check_comm(comm)
        self.mpi = load_mpi()
        self.inner = backend
        self.spec, self.dtype = backend.spec, backend.dtype
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        n_params = self.spec.n_params
        # One allocation: the gradient, then the loss sum and the row count (cpu/split.py).
        self.sums = np.zeros(n_params + 2, self.dtype)
        self.grads = self.sums[:n_params]

    def __getattr__(self, name):
        # Called only for names this class lacks: everything but training is the CPU
        # backend's, the same on every rank.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- one fit ---------------------------------------------------------------------------
    def begin_fit(self, X, T, batch_size, shuffle, epochs, loss, optimizer, l2,
                  validation=None, *, weights=None, schedule=None, l2_per_sample=False,
                  fit_epochs=None):
        """As CpuBackend.begin_fit, after checking that every rank passes the same settings
        and data, then with rank 0's weights, optimizer state and rng on every rank."""
        if weights is not None or schedule is not None or l2_per_sample:
            raise NotImplementedError("sample weights, schedules and l2_per_sample are not in "
                                      "the data-parallel step yet; fit without comm")
        batch_size = min(batch_size, X.shape[0])
        settings = {
            "architecture": (self.spec.n_inputs, tuple(self.spec.as_list()), self.dtype.str),
            "data": fingerprint(X, T),
            "validation data": None if validation is None else fingerprint(*validation),
            "batch_size": batch_size, "shuffle": shuffle, "epochs": epochs, "loss": loss,
            "optimizer": optimizer.config(), "l2": l2,
        }
        self._agree(settings)  # from here on, every rank takes the same branches
        if self.dtype == np.float32 and batch_size > MAX_FLOAT32_BATCH:
            raise ValueError(f"batch_size {batch_size} is above {MAX_FLOAT32_BATCH}, the "
                             f"largest row count a float32 model counts exactly across ranks; "
                             f"use a smaller batch or dtype='float64'")
        self.inner.begin_fit(X, T, batch_size, shuffle, epochs, loss, optimizer, l2,
                             validation, fit_epochs=fit_epochs)
        ws = self.inner.ws
        for name in STATE:  # the model's whole persistent state, rank 0's
            self.comm.Bcast(getattr(ws, name), root=0)
        self.X, self.T, self.validation = X, T, validation
        self.l2 = l2
        self.epoch_loss = self.inner.epoch_loss
        self.epoch_grad_norm = self.inner.epoch_grad_norm

    def _agree(self, settings):
        """ValueError on every rank, naming what differs, unless all ranks passed the same."""
        everyone = self.comm.allgather(settings)
        for rank, theirs in enumerate(everyone):
            for key in settings:
                if theirs[key] != everyone[0][key]:
                    values = ("" if key.endswith("data") else
                              f" ({theirs[key]!r} != {everyone[0][key]!r})")
                    raise ValueError(
                        f"data-parallel fit: rank {rank}'s {key} differs from rank 0's"
                        f"{values}; every rank must build the same model and call fit with "
                        f"the same data and arguments")

    def train_steps(self, n_steps):
        """Up to n_steps global minibatch steps: (status, steps done), the same on every rank.

        Each rank's caller sizes its calls by its own clock; the smallest request runs, so
        that every rank makes the same calls and reaches each epoch's end together."""
        MPI = self.mpi
        inner = self.inner
        state = inner.ws.train_state()._replace(grads=self.grads)
        fit, config = inner.fit_state, inner.config
        X, T, sums = self.X, self.T, self.sums
        rank, size, comm = self.rank, self.size, self.comm
        if n_steps == 0:
            # Compile (or load) this rank's kernels and change nothing, with no collective:
            # training.fit makes this call on every rank before its first step.
            for kernel, args in self._calls():
                compile_for(kernel, *args)
            return OK, 0
        n_steps = self.comm.allreduce(n_steps, op=MPI.MIN)
        inner.ws.save_backup()
        if n_steps > 0:
            split.local_gradient_sums(state, fit, X, T, config, rank, size, sums)
        for step in range(n_steps):
            comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
            status = split.apply_and_begin_next(state, fit, X, T, config, rank, size, sums,
                                                step + 1 < n_steps)
            if status != OK:
                return int(status), step
        return OK, n_steps

    def _calls(self):
        """(kernel, arguments) of the compiled calls of a step."""
        inner = self.inner
        state = inner.ws.train_state()._replace(grads=self.grads)
        args = (state, inner.fit_state, self.X, self.T, inner.config, self.rank, self.size,
                self.sums)
        return [(split.local_gradient_sums, args), (split.apply_and_begin_next, (*args, True))]

    def kernels_ready(self):
        """True when this rank's step kernels are compiled and in memory."""
        return all(is_compiled(kernel, *args) for kernel, args in self._calls())

    def validation_loss(self):
        """The loss on the validation data, its rows split across the ranks, l2 included."""
        Xv, Tv = self.validation
        inner = self.inner
        ws = inner.ws  # its row buffers were sized by begin_fit
        lo, hi = split.rank_rows(Xv.shape[0], self.rank, self.size)
        part = np.zeros(1)
        part[0] = split.loss_sum_rows(ws.acts, ws.logits, ws.deltas, Xv[lo:hi], Tv[lo:hi],
                                      ws.params, self.spec.table, ws.rows, inner.loss,
                                      UNWEIGHTED)
        self.comm.Allreduce(self.mpi.IN_PLACE, part, op=self.mpi.SUM)
        return float(part[0] / Xv.shape[0] + l2_forward(ws.params, self.spec.n_weights,
                                                       self.l2))

    def any_rank(self, flag):
        """True on every rank if `flag` is true on any: for a decision each rank takes alone
        (a callback asking to stop), which must come out the same on all of them."""
        return bool(self.comm.allreduce(bool(flag), op=self.mpi.LOR))

    def restore_if_overflowed(self):
        """Every rank holds the same weights and backup: each restores alone, alike."""
        return self.inner.restore_if_overflowed()
