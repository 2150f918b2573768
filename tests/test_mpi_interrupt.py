"""Ctrl-C under `mpiexec -n 2 fastmlp train` (issue 23 item 3): mpiexec forwards SIGINT to
every rank, each at its own moment (loading data, compiling, inside a step, in a collective,
saving); the ranks agree to stop at one step, as for a NaN loss, so no rank waits for ever.

20 launches on a tiny table, each sent SIGINT at a random moment (seeded: the same fractions
of the command's time on every run of the test) once both ranks are in the command, the
command's time measured by an unpressed launch first: every launch ends within 30 s,
both ranks exit with the same status (0: finished first; 130: interrupted) having trained
the same epochs to the same weights, and the files match the status. About 90 s in all on
two busy cores, mostly the ranks' Python start-up.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py")

from tests.test_mpi import REPO, mpiexec  # noqa: E402

LAUNCHES = 20
DEADLINE = 30.0


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpi-interrupt")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.6f}" for v in row) + f",{t}"
                                 for row, t in zip(X, y)]
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    return root / "t.csv"


def _launch(table, outdir, press_after, deadline=DEADLINE):
    """One `mpiexec -n 2 fastmlp train` sent SIGINT press_after s after both ranks are
    ready (None: never). Returns (seconds taken, output)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=REPO)
    argv = ["train", "--data", str(table), "--target", "label", "--layers",
            "8:relu,2:softmax", "--epochs", "400", "--batch-size", "8", "--quiet",
            "--test-split", "0", "--save", str(outdir / "m.npz")]
    command = [mpiexec(), "-n", "2", sys.executable, "-m", "tests.mpi_interrupt",
               str(outdir), *argv]
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        while press_after is not None and not all(
                (outdir / f"ready{r}").exists() for r in range(2)):
            if proc.poll() is not None or time.monotonic() - start > deadline:
                break
            time.sleep(0.01)
        if press_after is not None and proc.poll() is None:
            time.sleep(press_after)
            proc.send_signal(signal.SIGINT)  # mpiexec forwards it to every rank
        output, _ = proc.communicate(timeout=max(1.0, deadline - (time.monotonic() - start)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec -n 2 fastmlp train did not end within {deadline} s of its "
                    f"launch (a rank hung):\n{output[-3000:]}")
    return time.monotonic() - start, output


def _check(outdir, output):
    ranks = [json.loads((outdir / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1], output[-3000:]  # status, epochs, interruption, weights
    status = ranks[0]["status"]
    assert status in (0, 130), output[-3000:]
    assert "Traceback" not in output
    names = sorted(p.name for p in outdir.iterdir() if not p.name.startswith(("ready",
                                                                               "rank")))
    if status == 0:
        assert names == ["m.npz", "m.npz.json"], names
    elif ranks[0]["epochs"]:
        assert names == ["m.interrupted.npz", "m.interrupted.npz.json"], names
    else:
        assert names == [], names
    return status


def _command_seconds(outdir):
    """From both ranks ready to the last rank's record: the command's own time."""
    ready = max((outdir / f"ready{r}").stat().st_mtime for r in range(2))
    return max((outdir / f"rank{r}.json").stat().st_mtime for r in range(2)) - ready


def test_ctrl_c_at_random_moments_never_hangs_and_ranks_agree(table, tmp_path):
    # The first launch is not pressed: it fills numba's disk cache, so that the pressed
    # ones load the kernels, as a user's second run does. The second is not pressed either:
    # it times the command, so that the presses fall in it (data loading, loading the
    # kernels, training, saving) rather than after it, wherever the machine is fast.
    for name, deadline in (("cold", 600), ("warm", DEADLINE)):  # cold: compiles a minute
        (tmp_path / name).mkdir()
        _, output = _launch(table, tmp_path / name, None, deadline=deadline)
        assert _check(tmp_path / name, output) == 0
    seconds = _command_seconds(tmp_path / "warm")
    fractions = random.Random(23).sample(range(1000), LAUNCHES)
    statuses = []
    for i, fraction in enumerate(fractions):
        outdir = tmp_path / f"run{i}"
        outdir.mkdir()
        took, output = _launch(table, outdir, seconds * fraction / 1000)
        assert took < DEADLINE
        statuses.append(_check(outdir, output))
    assert 130 in statuses  # the presses did land during training


FINALIZE_SCRIPT = """
import os, signal, sys, time
from mpi4py import MPI
import fastmlp
from fastmlp.cpu.mpi import MpiBackend
outdir, rank = sys.argv[1], MPI.COMM_WORLD.Get_rank()
MpiBackend(fastmlp.MLP(2, [(1, "sigmoid")]).backend, MPI.COMM_WORLD)  # as every MPI fit does
signal.signal(signal.SIGINT, lambda signum, frame: None)  # the script minds Ctrl-C itself
open(os.path.join(outdir, f"ready{rank}"), "w").close()
if rank == 0:  # still saving, say, when the press comes; rank 1 waits in MPI_Finalize
    time.sleep(4)
    open(os.path.join(outdir, "saved"), "w").close()
"""


def test_ctrl_c_while_a_finished_rank_finalizes_kills_no_rank(tmp_path):
    """A rank that has finished waits in MPI_Finalize, which runs after Python has put SIGINT
    back to its default action: a Ctrl-C there killed it, and mpiexec then killed rank 0,
    still at work (core/interrupts.quiet_mpi_exit)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-c", FINALIZE_SCRIPT,
                             str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        start = time.monotonic()
        while not all((tmp_path / f"ready{r}").exists() for r in range(2)):
            assert proc.poll() is None and time.monotonic() - start < 120, proc.poll()
            time.sleep(0.01)
        time.sleep(1.0)  # rank 1 is in MPI_Finalize now, rank 0 in its sleep
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (tmp_path / "saved").exists(), output[-2000:]
    assert proc.returncode == 0, output[-2000:]
