"""Data-parallel training over MPI (mpi4py): MLP.fit(..., comm=comm).

Every rank runs the same script on the same data and holds the same model. Each global batch
of batch_size rows is split across the ranks; each rank sums the gradient over its rows, one
in-place Allreduce per step adds the sums up, and every rank applies the same update from the
same reduced sums, so the weights and the optimizer state stay identical without being sent.
Rank 0's weights, optimizer state and shuffling rng are broadcast when each fit begins, so
ranks that built their models from different seeds still agree.

MpiBackend (fit/protocols.Backend) wraps a model's CpuBackend: everything but training (weights,
inference, the loss of given rows) is the CPU backend's, which computes it identically on
every rank, and start(plan) gives an MpiRun (fit/protocols.Run), which wraps the CpuRun of the
same plan through its methods (bundles, checkpoint, cursor, ...). The compiled halves of a
step are in cpu/split.py.

Every collective below is reached by every rank in the same order: the fit's settings and a
fingerprint of its data are compared first (ValueError on every rank if any rank differs,
rather than a hang), each call runs the smallest step count any rank asked for, and a
non-finite loss or gradient is seen after the reduction, so all ranks stop at the same step.
"""
import os
import zlib

import numpy as np

from . import split
from .network import UNWEIGHTED, l2_forward
from ..core.interrupts import DeferredInterrupts, pressed, quiet_mpi_exit
from ..core.jitcache import compile_for, is_compiled
from ..core.status import OK
from ..core.workspace import STATE

#: Bytes checksummed at a time when checking that every rank passes the same data.
CHECKSUM_CHUNK = 1 << 24
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
    return load_mpi().COMM_WORLD if launched(environ) else None


def launched(environ=None):
    """True in a process that is one of several that mpiexec (or srun) started."""
    environ = os.environ if environ is None else environ
    return any(environ.get(name, "1").strip() not in ("", "1")
               for name in WORLD_SIZE_VARIABLES)


def fingerprint(X, T):
    """The shape, dtype and a checksum of every byte of X and T (CRC-32 and Adler-32, in
    chunks: about a millisecond per 10 MB, far less than one epoch over the same rows)."""
    parts = []
    for a in (X, T):
        data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        crc = adler = 1
        for lo in range(0, data.shape[0], CHECKSUM_CHUNK):
            chunk = data[lo:lo + CHECKSUM_CHUNK]
            crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
        parts.append((a.shape, a.dtype.str, crc, adler))
    return repr(parts)


class MpiBackend:
    """A CpuBackend whose fits run in step with the other ranks of `comm`."""
    device = "cpu"

    def __init__(self, backend, comm):
        if backend.device != "cpu":
            raise ValueError(f"data-parallel training (comm=...) runs on the CPU; this model "
                             f"is on {backend.device!r}: call model.to('cpu')")
        self.comm = check_comm(comm)
        quiet_mpi_exit()  # a Ctrl-C in MPI_Finalize would make mpiexec kill the other ranks
        self.inner = backend
        self.spec, self.dtype = backend.spec, backend.dtype
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    # -- the model's: the same on every rank -------------------------------------------------
    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)

    def get_params(self):
        return self.inner.get_params()

    def set_params(self, params):
        self.inner.set_params(params)

    def check_finite_first(self, X, what):
        return self.inner.check_finite_first(X, what)

    def forward_rows(self, X, unchecked=None):
        return self.inner.forward_rows(X, unchecked)

    def loss_rows(self, X, T, objective, weights=None):
        return self.inner.loss_rows(X, T, objective, weights)

    def gradient_rows(self, X, T, objective, weights=None):
        return self.inner.gradient_rows(X, T, objective, weights)

    # -- one fit ---------------------------------------------------------------------------
    def start(self, plan):
        """An MpiRun of plan, after checking that every rank passes the same settings and
        data, with rank 0's weights, optimizer state and rng on every rank. Ctrl-C is
        counted, not raised, until the run closes (core/interrupts.py)."""
        interrupts = DeferredInterrupts()
        interrupts.__enter__()
        try:
            run = self._start(plan)
        except BaseException:
            interrupts.__exit__(None, None, None)
            raise
        run.interrupts = interrupts
        return run

    def _start(self, plan):
        objective, rows = plan.objective, plan.train
        if rows.weights is not None or plan.schedule is not None or objective.l2_per_sample:
            raise NotImplementedError("sample weights, schedules and l2_per_sample are not in "
                                      "the data-parallel step yet; fit without comm")
        v = plan.validation
        settings = {
            "architecture": (self.spec.n_inputs, tuple(self.spec.as_list()), self.dtype.str),
            "data": fingerprint(rows.X, rows.T),
            "validation data": None if v is None else fingerprint(v.X, v.T),
            "batch_size": plan.batch_size, "shuffle": plan.shuffle, "epochs": plan.epochs,
            "loss": objective.loss, "optimizer": plan.optimizer.config(), "l2": objective.l2,
        }
        agree(self.comm, settings)  # from here on, every rank takes the same branches
        if self.dtype == np.float32 and plan.batch_size > MAX_FLOAT32_BATCH:
            raise ValueError(f"batch_size {plan.batch_size} is above {MAX_FLOAT32_BATCH}, the "
                             f"largest row count a float32 model counts exactly across ranks; "
                             f"use a smaller batch or dtype='float64'")
        inner = self.inner.start(plan)
        state = self.inner.get_state()
        for name in STATE:  # the model's whole persistent state, rank 0's
            self.comm.Bcast(state[name], root=0)
        self.inner.set_state({name: state[name] for name in STATE})
        return MpiRun(inner, plan, self.comm, self.rank, self.size)


def agree(comm, settings):
    """ValueError on every rank, naming what differs, unless all ranks passed the same."""
    everyone = comm.allgather(settings)
    for rank, theirs in enumerate(everyone):
        for key in settings:
            if theirs[key] != everyone[0][key]:
                values = ("" if key.endswith("data") else
                          f" ({theirs[key]!r} != {everyone[0][key]!r})")
                raise ValueError(
                    f"data-parallel fit: rank {rank}'s {key} differs from rank 0's"
                    f"{values}; every rank must build the same model and call fit with "
                    f"the same data and arguments")


class MpiRun:
    """One data-parallel fit: a CpuRun's buffers and records, stepped with the other ranks.
    Each rank's BLAS threads are the launcher's (its share of the node's cores): this run
    sets no limit."""
    blas_limit = None

    def __init__(self, inner, plan, comm, rank, size):
        self.inner, self.plan = inner, plan
        self.comm, self.mpi = comm, load_mpi()
        self.rank, self.size = rank, size
        params = inner.bundles()[0].params
        n_params = params.shape[0]
        # One allocation: the gradient, then the loss sum and the row count (cpu/split.py).
        self.sums = np.zeros(n_params + 2, params.dtype)
        self.grads = self.sums[:n_params]
        self.calls = 0
        self.interrupts = DeferredInterrupts()  # start() hands over the one it entered

    @property
    def epoch_loss(self):
        return self.inner.epoch_loss

    @property
    def epoch_grad_norm(self):
        return self.inner.epoch_grad_norm

    @property
    def epoch_lr(self):
        return self.inner.epoch_lr

    def _args(self):
        """The split kernels' arguments: the CpuRun's bundles with this run's gradient."""
        state, fit, X, T, config = self.inner.bundles()
        return (state._replace(grads=self.grads), fit, X, T, config, self.rank, self.size,
                self.sums)

    def _calls(self):
        """(kernel, arguments) of the compiled calls of a step."""
        args = self._args()
        return [(split.local_gradient_sums, args), (split.apply_and_begin_next, (*args, True))]

    def train_steps(self, n_steps):
        """Up to n_steps global minibatch steps: (status, steps done), the same on every rank.

        Each rank's caller sizes its calls by its own clock; the smallest request runs, so
        that every rank makes the same calls and reaches each epoch's end together."""
        MPI, comm = self.mpi, self.comm
        if n_steps == 0:
            # Compile (or load) this rank's kernels and change nothing, with no collective:
            # the loop makes this call on every rank before its first step.
            for kernel, args in self._calls():
                compile_for(kernel, *args)
            return OK, 0
        # A rank that saw Ctrl-C asks for 0 steps: every rank stops here, together.
        n_steps = comm.allreduce(0 if pressed() else n_steps, op=MPI.MIN)
        if n_steps == 0:
            raise KeyboardInterrupt
        self.inner.checkpoint()
        self.calls += 1
        args = self._args()
        if n_steps > 0:
            split.local_gradient_sums(*args)
        for step in range(n_steps):
            comm.Allreduce(MPI.IN_PLACE, self.sums, op=MPI.SUM)
            status = split.apply_and_begin_next(*args, step + 1 < n_steps)
            if status != OK:
                return int(status), step
        return OK, n_steps

    def kernels_ready(self):
        """True when this rank's step kernels are compiled and in memory."""
        return all(is_compiled(kernel, *args) for kernel, args in self._calls())

    def cursor(self):
        return self.inner.cursor()

    def next_segment(self, epochs):
        self.inner.next_segment(epochs)

    def validation_loss(self):
        """The loss on the validation rows, split across the ranks, l2 included."""
        v = self.plan.validation
        state, _, _, _, config = self.inner.bundles()
        lo, hi = split.rank_rows(v.X.shape[0], self.rank, self.size)
        part = np.zeros(1)
        part[0] = split.loss_sum_rows(state.acts, state.logits, state.deltas, v.X[lo:hi],
                                      v.T[lo:hi], state.params, config.layers, config.rows,
                                      config.loss, UNWEIGHTED)
        self.comm.Allreduce(self.mpi.IN_PLACE, part, op=self.mpi.SUM)
        return float(part[0] / v.X.shape[0] + l2_forward(state.params, config.n_weights,
                                                        config.l2))

    def restore_if_overflowed(self):
        """Every rank holds the same weights and backup: each restores alone, alike."""
        return self.inner.restore_if_overflowed()

    def current_lr(self):
        return self.inner.current_lr()

    def agree_to_stop(self, stop):
        """True on every rank if `stop` is true on any: for a decision each rank takes alone
        (a callback asking to stop), which must come out the same on all of them."""
        return bool(self.comm.allreduce(bool(stop), op=self.mpi.LOR))

    def finished(self):
        return False

    def annotate(self, history):
        """A minibatch fit's History needs nothing more."""

    def path(self):
        return "mpi"

    def launches(self):
        return self.calls

    def close(self):
        self.inner.close()
        self.interrupts.__exit__(None, None, None)
