"""The two lifetimes, as typing.Protocols with every member required.

A Backend lives as long as the model on one device (cpu/backend.CpuBackend,
cuda/backend.CudaBackend, cpu/mpi.MpiBackend): its buffers and what they compute on host rows.
A Run lives for one fit (cpu/run.CpuRun, cuda/run.CudaRun, cpu/mpi.MpiRun, fit/lbfgs.LbfgsRun):
Backend.start(plan) makes it, and fit/loop.py drives it through these members alone, with no
probing: a member one kind of run has no use for still answers (a single-process run agrees
to stop alone, a minibatch run is never `finished` before its epochs are).

Rows are the kernels' arrays (fit/plan.Rows); weights are float64 (n,) or None, checked
once by the model: a backend does not check them again.
"""
from typing import Optional, Protocol, Tuple

import numpy as np


class Run(Protocol):
    """One fit's compiled loop and its records.

    epoch_loss[e]: the sum over epoch e's steps of the batch's mean loss times its rows
    (divide by the rows for the epoch's mean); epoch_grad_norm[e, l]: the sum over its
    steps of ||dW_l|| (divide by the steps); epoch_lr[e]: the rate of its last update (NaN
    before any). Epochs count from the start of the current segment."""
    epoch_loss: np.ndarray
    epoch_grad_norm: np.ndarray
    epoch_lr: np.ndarray

    def train_steps(self, n_steps: int) -> Tuple[int, int]:
        """Up to n_steps steps in one compiled call: (status, steps done). n_steps = 0
        changes nothing and compiles (or loads) the kernels the fit calls."""

    def kernels_ready(self) -> bool:
        """True when every kernel the fit calls can run without compiling: in memory, or
        loaded from a disk cache by this call."""

    def cursor(self) -> Tuple[int, int]:
        """(epoch, batch) reached, counted from the start of the current segment."""

    def next_segment(self, epochs: int) -> None:
        """Start the next segment of `epochs` epochs: cursor and statistics from zero, the
        permutation, rng, optimizer and schedule state continued."""

    def validation_loss(self) -> float:
        """The loss on the plan's validation rows (weighted when they carry weights)."""

    def restore_if_overflowed(self) -> bool:
        """After a failed step: if an update overflowed the weights themselves, restore the
        state from the start of the last train_steps call; True if it did."""

    def current_lr(self) -> Optional[float]:
        """The rate of the most recent update (of the next before any); None without one."""

    def agree_to_stop(self, stop: bool) -> bool:
        """Whether every process stops: True everywhere if `stop` is on any rank."""

    def finished(self) -> bool:
        """True when the run can make no further step before its epochs are done (L-BFGS
        has converged); a minibatch run never is."""

    def annotate(self, history) -> None:
        """Add what this run alone knows to the fit's History (L-BFGS: scipy's result)."""

    def path(self) -> str:
        """Which training loop runs the steps, for benchmarks and tests: "generic",
        "generated" or "parallel" (CPU), "fused-steps", "fused" or "tiled" (CUDA), "mpi",
        "lbfgs"."""

    def launches(self) -> int:
        """Compiled calls (CPU) or kernel launches (CUDA) made so far by train_steps."""

    def close(self) -> None:
        """End the fit: release what the run holds (thread limits, worker threads)."""


class Backend(Protocol):
    """A model's buffers on one device and the computations over them."""
    device: str
    spec: object
    dtype: np.dtype

    def get_state(self) -> dict:
        """Host copies of the persistent buffers (core/workspace.STATE) and "perm"."""

    def set_state(self, state: dict) -> None:
        """Buffers from get_state (or a file); "perm" optional, of any length."""

    def get_params(self) -> np.ndarray:
        """A copy of the flat parameter vector."""

    def set_params(self, params: np.ndarray) -> None:
        """Replace the flat parameter vector."""

    def check_finite_first(self, X: np.ndarray, what: str) -> Optional[str]:
        """Check X for NaN and infinity now (check_finite's ValueError), unless
        forward_rows finds them in its own pass (CPU: a forward split over the threads);
        returns what forward_rows' `unchecked` is then: None, or `what`."""

    def forward_rows(self, X: np.ndarray, unchecked: Optional[str] = None) -> np.ndarray:
        """Output activations of every row of X, (n, n_outputs). unchecked: X's name when
        X has not been checked for NaN and infinity (check_inputs(finite=False)); then the
        backend raises check_finite's ValueError for them before returning anything."""

    def loss_rows(self, X, T, objective, weights=None) -> float:
        """The objective on (X, T) as one batch (weighted mean with weights)."""

    def gradient_rows(self, X, T, objective, weights=None) -> np.ndarray:
        """The flat gradient of loss_rows, a copy; the parameters do not change."""

    def start(self, plan) -> Run:
        """Set up one fit of `plan` (its first segment: plan.first_segment() epochs)."""

