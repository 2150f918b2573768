"""Data-parallel training over MPI (fastmlp/distributed.py, fastmlp/cpu/split.py).

The two-rank tests launch tests/mpi_fit.py under `mpiexec -n 2` and compare what each rank
wrote with the other rank (bitwise) and with the same fit in this process (to 1e-10, float64).
The launch has a timeout: a rank left waiting in a collective fails the test rather than
hanging it. Needs the `mpi` extra (mpi4py and MPICH).
"""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import fastmlp  # noqa: E402
from fastmlp.cpu import mpi as distributed
from tests import mpi_fit  # noqa: E402
from tests.runs import make_plan  # noqa: E402

RANKS = 2
#: Seconds a launch may take: both ranks compiling the kernels on a cold cache take about a
#: minute on two busy cores, a warm launch a few seconds. Past it, a rank is hung.
TIMEOUT = 600
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpiexec():
    here = shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    found = here or shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpi4py is installed but mpiexec is not on PATH: pip install "
                    "'fastmlp[mpi]' installs MPICH's")
    return found


def launch(case, outdir):
    """Run tests/mpi_fit.py CASE under mpiexec -n RANKS; fail on an error or a hang."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")  # one BLAS thread per rank
    # python -m mpi4py: an exception on one rank aborts them all (MPI_Abort) instead of
    # leaving the others waiting in a collective.
    command = [mpiexec(), "-n", str(RANKS), sys.executable, "-m", "mpi4py", "-m",
               "tests.mpi_fit", case, str(outdir)]
    # A session of its own, so that a hang can be ended with every rank mpiexec started.
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {RANKS} ({case}) was still running after {TIMEOUT} s: a rank "
                    f"hung\n{output[-4000:]}")
    assert proc.returncode == 0, f"mpiexec -n {RANKS} ({case}) failed:\n{output[-4000:]}"
    return outdir


def ranks(outdir, name):
    return [np.load(os.path.join(outdir, f"{name}-rank{r}.npz")) for r in range(RANKS)]


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    return launch("fits", tmp_path_factory.mktemp("mpi-fits"))


@pytest.fixture(scope="module")
def failures(tmp_path_factory):
    return launch("failures", tmp_path_factory.mktemp("mpi-failures"))


@pytest.mark.parametrize("name", sorted(mpi_fit.FITS))
def test_ranks_agree_bitwise_and_equal_one_process(fits, name):
    optimizer, l2, rows, batch_size, epochs = mpi_fit.FITS[name]
    results = ranks(fits, name)
    for other in results[1:]:
        for key in ("weights", "loss", "val_loss", "grad_norms"):
            assert np.array_equal(results[0][key], other[key]), key

    model = mpi_fit.build_model(optimizer(), l2)
    initial = mpi_fit.flat_weights(model)
    X, y = mpi_fit.data(rows)
    h = model.fit(X, y, epochs=epochs, batch_size=batch_size,
                  validation_data=mpi_fit.validation(), progress=False)
    weights = mpi_fit.flat_weights(model)
    assert np.abs(weights - initial).max() > 0.05  # training moved the weights
    np.testing.assert_allclose(results[0]["weights"], weights, rtol=0, atol=1e-10)
    for key, expected in (("loss", h.loss), ("val_loss", h.val_loss),
                          ("grad_norms", h.grad_norms)):
        assert results[0][key].shape == expected.shape
        np.testing.assert_allclose(results[0][key], expected, rtol=1e-10, atol=0, err_msg=key)


def test_nonfinite_loss_on_one_rank_stops_every_rank_at_the_same_step(failures):
    results = ranks(failures, "nonfinite")
    model, X, y = mpi_fit.poisoned_regression()
    with pytest.raises(FloatingPointError) as caught:
        model.fit(X, y, epochs=3, batch_size=8, progress=False)
    expected = f"FloatingPointError: {caught.value}"
    for result in results:
        assert str(result["message"]) == expected  # the same step, on every rank
        np.testing.assert_allclose(result["weights"], mpi_fit.flat_weights(model), rtol=0,
                                   atol=1e-10)
    assert np.array_equal(results[0]["weights"], results[1]["weights"])


def test_ranks_passing_different_data_are_refused_on_every_rank(failures):
    for result in ranks(failures, "mismatch"):
        assert str(result["message"]).startswith(
            "ValueError: data-parallel fit: rank 1's data differs from rank 0's")


@pytest.mark.parametrize("case", ["one_label", "one_feature"])
def test_one_changed_value_anywhere_is_refused_on_every_rank(failures, case):
    """Issue 23 item 10: the check covers every row, not 64 sampled ones."""
    for result in ranks(failures, case):
        assert str(result["message"]).startswith(
            "ValueError: data-parallel fit: rank 1's data differs from rank 0's")


def test_the_data_check_reads_every_byte():
    X = np.zeros((1000, 3))
    T = np.zeros((1000, 1))
    before = distributed.fingerprint(X, T)
    for i in range(0, 1000, 37):
        X[i, i % 3] = 1e-300
        assert distributed.fingerprint(X, T) != before
        X[i, i % 3] = 0
    T[999, 0] = -0.0  # another bit pattern of the same value: still another payload
    assert distributed.fingerprint(X, T) != before


def test_a_flag_raised_on_one_rank_is_seen_on_every_rank(failures):
    for result in ranks(failures, "any_rank"):
        assert result["stops"].tolist() == [True, False]


def test_a_process_started_by_mpiexec_finds_its_world(failures):
    for result in ranks(failures, "launched"):
        assert int(result["size"]) == RANKS


def test_a_plain_run_has_no_world_to_join():
    assert distributed.launched_comm({}) is None
    assert distributed.launched_comm({"PMI_SIZE": "1", "OMPI_COMM_WORLD_SIZE": "1"}) is None


# -- in this process: one rank (MPI.COMM_SELF) ----------------------------------------------

def test_one_rank_equals_fit_without_comm():
    from mpi4py import MPI
    optimizer, l2, rows, batch_size, epochs = mpi_fit.FITS["adam"]
    X, y = mpi_fit.data(rows)
    alone, split = (mpi_fit.build_model(optimizer(), l2) for _ in range(2))
    h = alone.fit(X, y, epochs=epochs, batch_size=batch_size, progress=False)
    h_split = split.fit(X, y, epochs=epochs, batch_size=batch_size, progress=False,
                        comm=MPI.COMM_SELF)
    np.testing.assert_allclose(mpi_fit.flat_weights(split), mpi_fit.flat_weights(alone),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_split.loss, h.loss, rtol=1e-10)


def test_zero_steps_compile_and_change_nothing():
    """training.fit's 0-step call before its first step: the split step's kernels compile
    (or load), with no collective, and no state moves."""
    from mpi4py import MPI
    optimizer, l2, rows, batch_size, epochs = mpi_fit.FITS["adam"]
    X, y = mpi_fit.data(rows)
    model = mpi_fit.build_model(optimizer(), l2)
    backend = distributed.MpiBackend(model.backend, MPI.COMM_SELF)
    run = backend.start(make_plan(model, *model.as_arrays(X, y), batch_size, True, epochs))
    try:
        before = {**backend.get_state(), "cursor": np.array(run.cursor())}
        assert run.train_steps(0) == (0, 0)
        assert run.kernels_ready()
        after = {**backend.get_state(), "cursor": np.array(run.cursor())}
    finally:
        run.close()  # an MpiRun holds SIGINT (core/interrupts.py) until it closes
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_comm_must_be_an_mpi4py_communicator():
    model = mpi_fit.build_model(fastmlp.SGD(), 0.0)
    X, y = mpi_fit.data(8)
    before = mpi_fit.flat_weights(model)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        model.fit(X, y, progress=False, comm="COMM_WORLD")
    assert np.array_equal(mpi_fit.flat_weights(model), before)


def test_only_the_cpu_backend_trains_over_mpi():
    from mpi4py import MPI

    class OnTheGpu:
        device = "cuda"

    with pytest.raises(ValueError, match="runs on the CPU"):
        distributed.MpiBackend(OnTheGpu(), MPI.COMM_SELF)


def test_without_mpi4py_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `from mpi4py import MPI` fails
    model = mpi_fit.build_model(fastmlp.SGD(), 0.0)
    X, y = mpi_fit.data(8)
    with pytest.raises(ImportError, match=r"fastmlp\[mpi\]"):
        model.fit(X, y, progress=False, comm=object())


def test_a_float32_batch_must_be_counted_exactly():
    from mpi4py import MPI
    model = fastmlp.MLP(2, [(3, "relu"), (1, "identity")], dtype="float32", seed=0)
    backend = distributed.MpiBackend(model.backend, MPI.COMM_SELF)
    rows = distributed.MAX_FLOAT32_BATCH + 1
    X = np.broadcast_to(np.zeros((1, 2), np.float32), (rows, 2))  # no memory behind the rows
    T = np.broadcast_to(np.zeros((1, 1), np.float32), (rows, 1))
    with pytest.raises(ValueError, match="largest row count a float32 model counts exactly"):
        backend.start(make_plan(model, X, T, rows, True, 1, l2=0.0))
