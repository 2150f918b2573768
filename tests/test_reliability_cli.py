"""The CLI under Ctrl-C and bad names: nothing a user saved is replaced by an interrupted or
failed run, every name is checked before training, and a failure after training says
truthfully where the model went."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from tests.cli_helpers import status_and_err

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if anything is trained."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the names were checked")
    monkeypatch.setattr(fastmlp.MLP, "fit", refuse)


@pytest.fixture
def good_model(tmp_path):
    """A saved model and its summary: what an interrupted or failed run must leave alone."""
    path = tmp_path / "m.npz"
    assert main(["train", "--dataset", "xor", "--epochs", "2", "--quiet",
                 "--save", str(path)]) == 0
    return path, path.read_bytes(), (tmp_path / "m.npz.json").read_bytes()


# -- Ctrl-C ----------------------------------------------------------------------------------

def _train_and_interrupt(save, presses):
    """Run `fastmlp train` on digits for ever; once it is past its second epoch, press Ctrl-C
    `presses` times (1 ms apart). (status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "fastmlp", "train", "--dataset", "digits", "--epochs",
         "1000000", "--save", str(save)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env)
    err = bytearray()

    def read():
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            err.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 240  # a cold numba cache compiles first
    while not re.search(rb"epoch ([3-9]|\d\d+)/", bytes(err)):
        assert process.poll() is None and time.monotonic() < deadline, bytes(err)[-2000:]
        time.sleep(0.05)
    for _ in range(presses):
        process.send_signal(signal.SIGINT)
        # Apart enough that the process runs between them (two SIGINTs pending at once
        # coalesce into one), close enough that both land in one compiled call (~0.1 s).
        time.sleep(0.02)
    out = process.stdout.read()
    process.wait(timeout=60)
    reader.join(timeout=10)
    return process.returncode, out.decode(), bytes(err).decode()


def test_ctrl_c_exits_130_and_saves_beside_the_existing_model(good_model):
    path, before, summary_before = good_model
    status, out, err = _train_and_interrupt(path, presses=1)
    assert status == 130, err[-2000:]
    assert path.read_bytes() == before and (path.parent / "m.npz.json").read_bytes() == \
        summary_before
    beside = path.parent / "m.interrupted.npz"
    assert "interrupted" in out and str(beside) in out
    assert f"saved to {str(beside)!r}" in err and "was left as it was" in err
    assert "Traceback" not in err and "RuntimeWarning" not in err
    record = json.loads((path.parent / "m.interrupted.npz.json").read_text())
    assert record["summary"]["interrupted"] is True and record["summary"]["epochs"] >= 2
    assert fastmlp.MLP.load(beside).layers[-1] == (10, "softmax")


def test_a_second_ctrl_c_stops_at_once_writing_nothing(good_model):
    path, before, _ = good_model
    status, out, err = _train_and_interrupt(path, presses=2)
    assert status == 130, err[-2000:]
    assert "stopped at once" in err and "Traceback" not in err
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["m.npz", "m.npz.json"]


def _press_ctrl_c_at_epoch_3(monkeypatch):
    """Every fit gets a SIGINT after its third epoch: fit's callbacks run in its loop, as
    Ctrl-C's KeyboardInterrupt would arrive there."""
    fit = fastmlp.MLP.fit

    def fit_pressing_ctrl_c(self, *args, **kwargs):
        def press(model, history):
            if history.epochs == 3:
                signal.raise_signal(signal.SIGINT)
        return fit(self, *args, callbacks=[press], **kwargs)

    monkeypatch.setattr(fastmlp.MLP, "fit", fit_pressing_ctrl_c)


def test_ctrl_c_in_process_keeps_the_existing_model(good_model, monkeypatch, capsys):
    path, before, _ = good_model
    _press_ctrl_c_at_epoch_3(monkeypatch)
    handler = signal.getsignal(signal.SIGINT)
    code = main(["train", "--dataset", "xor", "--epochs", "50", "--quiet", "--json",
                 "--save", str(path)])
    captured = capsys.readouterr()
    assert code == 130 and path.read_bytes() == before
    record = json.loads(captured.out)
    assert record["interrupted"] is True and record["epochs"] == 3
    assert record["model"] == str(path.parent / "m.interrupted.npz")
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_a_second_interrupted_run_keeps_the_first_ones_model(good_model, monkeypatch,
                                                             capsys):
    path, before, _ = good_model
    _press_ctrl_c_at_epoch_3(monkeypatch)
    kept = {}
    for seed, name in enumerate(["m.interrupted.npz", "m.interrupted-2.npz"]):
        code = main(["train", "--dataset", "xor", "--epochs", "50", "--quiet", "--json",
                     "--seed", str(seed), "--save", str(path)])
        record = json.loads(capsys.readouterr().out)
        assert code == 130 and record["model"] == str(path.parent / name)
        kept[name] = (path.parent / name).read_bytes()
    assert path.read_bytes() == before
    assert kept["m.interrupted.npz"] != kept["m.interrupted-2.npz"]  # two seeds, two models
    for name, data in kept.items():
        assert (path.parent / name).read_bytes() == data


def test_an_interrupted_name_is_taken_by_its_summary_alone(tmp_path):
    from fastmlp.cli import outputs
    (tmp_path / "m.interrupted.npz.json").write_text("{}")
    (tmp_path / "c.interrupted.png").write_bytes(b"")
    assert outputs.unused_interrupted_name(str(tmp_path / "m.npz"), model=True) == \
        str(tmp_path / "m.interrupted-2.npz")
    assert outputs.unused_interrupted_name(str(tmp_path / "c.png")) == \
        str(tmp_path / "c.interrupted-2.png")
    assert outputs.unused_interrupted_name(str(tmp_path / "n.npz"), model=True) == \
        str(tmp_path / "n.interrupted.npz")


def test_ctrl_c_while_scoring_keeps_the_trained_model(good_model, monkeypatch, capsys):
    """A press after fit returned, while the held-out scores are computed, skipped the save
    and lost the whole trained model (exit 130, no file). The scores are skipped; the model
    goes beside the existing one as an interrupted run's does."""
    from fastmlp.cli import train as cli_train
    path, before, _ = good_model

    def scoring_pressed(*args):
        signal.raise_signal(signal.SIGINT)
        raise AssertionError("the press did not interrupt the scores")

    monkeypatch.setattr(cli_train, "_metrics", scoring_pressed)
    code = main(["train", "--dataset", "xor", "--epochs", "5", "--quiet", "--json",
                 "--save", str(path)])
    captured = capsys.readouterr()
    assert code == 130 and path.read_bytes() == before, captured.err
    record = json.loads(captured.out)
    assert record["interrupted"] is True and record["training"] is None
    assert fastmlp.MLP.load(path.parent / "m.interrupted.npz").layers[-1] == (1, "sigmoid")


def test_ctrl_c_while_saving_finishes_the_save(tmp_path, monkeypatch, capsys):
    """A first press while the model is being written is noted, the write ends whole, and
    the command then exits 130 saying so."""
    from fastmlp.cli import outputs
    path = tmp_path / "m.npz"
    save_model = outputs.save_model

    def pressed_while_saving(model, target, summary):
        signal.raise_signal(signal.SIGINT)
        return save_model(model, target, summary)

    monkeypatch.setattr(outputs, "save_model", pressed_while_saving)
    code = main(["train", "--dataset", "xor", "--epochs", "5", "--quiet", "--save",
                 str(path)])
    captured = capsys.readouterr()
    assert code == 130 and "interrupted while writing" in captured.err, captured.err
    assert fastmlp.MLP.load(path).layers[-1] == (1, "sigmoid")
    assert json.loads((tmp_path / "m.npz.json").read_text())["summary"]["epochs"] == 5


def test_class_labels_a_model_file_cannot_keep_are_refused_before_training(
        tmp_path, capsys, no_training):
    """--task classify on a column holding inf trained to the end, then could not save the
    model (its labels go to JSON, which has no infinity) and exited 2 with nothing kept."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    y = np.where(X[:, 0] > 0, 1.0, np.inf)
    table = _table(tmp_path / "inf.csv", X, y)
    status, err = status_and_err(["train", "--data", table, "--target", "label", "--task",
                                  "classify", "--save", str(tmp_path / "m.npz")], capsys)
    assert status == 2 and "inf" in err and "cannot keep" in err, err
    assert not (tmp_path / "m.npz").exists()


def test_an_output_that_names_an_input_is_refused_first(tmp_path, data, capsys,
                                                        good_model):
    """`train --data d.csv --save d.csv`-like commands replaced the user's input with their
    output (the training data with a model, a model with its ONNX export)."""
    path, before, _ = good_model
    table = (tmp_path / "train.csv").read_bytes()
    data_npz = tmp_path / "d.npz"
    np.savez(data_npz, X=np.zeros((4, 2)), y=np.arange(4) % 2)
    plot = tmp_path / "curves.png"
    plot.symlink_to(tmp_path / "train.csv")  # a name of its own, the same file
    for argv in (["train", "--data", str(data_npz), "--target", "y", "--save",
                  str(data_npz)],
                 ["train", "--data", data, "--target", "label", "--plot", str(plot)],
                 ["export", str(path), "--onnx", str(path)],
                 ["predict", str(path), data, "--target", "label", "--out", data]):
        status, err = status_and_err(argv, capsys)
        assert status == 2 and "is the input file" in err, (argv, err)
    assert path.read_bytes() == before and (tmp_path / "train.csv").read_bytes() == table
    assert np.load(data_npz)["X"].shape == (4, 2)


# -- names checked before training -----------------------------------------------------------

def _table(path, X, y):
    lines = ["a,b,label"] + [f"{u},{v},{t}" for (u, v), t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    return _table(tmp_path / "train.csv", X, (X[:, 0] > 0).astype(int))


def test_a_test_file_with_nan_is_refused_before_training(tmp_path, data, capsys,
                                                          no_training):
    X = np.ones((5, 2))
    X[3, 1] = np.nan
    test = _table(tmp_path / "test.csv", X, [0, 1, 0, 1, 0])
    code, err = status_and_err(["train", "--data", data, "--target", "label", "--test",
                                test, "--quiet"], capsys)
    assert code == 2 and "row 3 column 1" in err and "test.csv" in err


def test_a_test_file_with_other_columns_is_refused_before_training(tmp_path, data, capsys,
                                                                    no_training):
    test = tmp_path / "test.csv"
    test.write_text("a,b,c,label\n1,2,3,0\n4,5,6,1\n")
    code, err = status_and_err(["train", "--data", data, "--target", "label", "--test",
                                str(test), "--quiet"], capsys)
    assert code == 2 and "3 feature columns" in err and "has 2" in err


def test_nan_in_data_names_the_file_row_and_column(tmp_path, capsys, no_training):
    X = np.ones((10, 2))
    X[7, 0] = np.nan
    data = _table(tmp_path / "d.csv", X, [0, 1] * 5)
    code, err = status_and_err(["train", "--data", data, "--target", "label"], capsys)
    assert code == 2 and "d.csv" in err and "row 7 column 0" in err


@pytest.mark.parametrize("name", ["x" * 300, "x" * 252, "x" * 240])
def test_save_names_too_long_for_the_file_system_are_refused_first(tmp_path, name, capsys,
                                                                    no_training):
    # 252 + ".npz" fits in 255 bytes, but its summary ".npz.json" does not; 240 fits, but
    # the twin an interrupted run writes (".interrupted.npz.json") does not.
    code, err = status_and_err(["train", "--dataset", "xor", "--save",
                                str(tmp_path / name)], capsys)
    assert code == 2 and "bytes, more than the 255" in err and "nothing was done" in err


def test_a_directory_in_the_way_of_the_npz_is_named(tmp_path, capsys, no_training):
    (tmp_path / "foo.npz").mkdir()
    code, err = status_and_err(["train", "--dataset", "xor", "--save",
                                str(tmp_path / "foo")], capsys)
    assert code == 2 and f"{str(tmp_path / 'foo.npz')!r} is a directory" in err


def test_a_directory_in_the_way_of_the_summary_is_refused(tmp_path, capsys, no_training):
    (tmp_path / "m.npz.json").mkdir()
    code, err = status_and_err(["train", "--dataset", "xor", "--save",
                                str(tmp_path / "m.npz")], capsys)
    assert code == 2 and "m.npz.json" in err and "is a directory" in err


def test_a_plot_format_matplotlib_cannot_write_is_refused_first(tmp_path, capsys,
                                                                no_training):
    code, err = status_and_err(["train", "--dataset", "xor", "--plot",
                                str(tmp_path / "out.xyz")], capsys)
    assert code == 2 and "cannot write .xyz files" in err and ".png" in err


# -- failures after training -----------------------------------------------------------------

@pytest.fixture
def private_tempdir(tmp_path, monkeypatch):
    import tempfile
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return temp


def test_a_summary_that_cannot_be_written_says_the_model_was_saved(
        tmp_path, monkeypatch, capsys, private_tempdir):
    from fastmlp.cli import labels

    def full_disk(path, summary):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(labels, "write_sidecar", full_disk)
    code, err = status_and_err(["train", "--dataset", "xor", "--epochs", "2", "--quiet",
                                "--save", str(tmp_path / "m.npz")], capsys)
    assert code == 1 and f"the model was saved to {str(tmp_path / 'm.npz')!r}" in err
    assert "No space left" in err
    assert fastmlp.MLP.load(tmp_path / "m.npz").n_inputs == 2
    assert os.listdir(private_tempdir) == []  # no duplicate left behind


def test_a_value_error_from_the_save_rescues_the_model_with_status_1(
        tmp_path, monkeypatch, capsys, private_tempdir):
    from fastmlp import io
    write = io.write

    def too_long(path, meta, arrays):
        if str(path).startswith(str(private_tempdir)):
            return write(path, meta, arrays)
        raise ValueError(f"cannot save {path!r}: the file name is too long")

    monkeypatch.setattr(io, "write", too_long)
    code, err = status_and_err(["train", "--dataset", "xor", "--epochs", "2", "--quiet",
                                "--save", str(tmp_path / "m.npz")], capsys)
    assert code == 1 and "could not save the model" in err
    rescued = err.split("it was saved to '")[1].split("'")[0]
    assert rescued.startswith(str(private_tempdir))
    assert fastmlp.MLP.load(rescued).layers[-1] == (1, "sigmoid")


# -- silently wrong outputs ------------------------------------------------------------------

@pytest.fixture
def iris_like(tmp_path):
    """A classifier saved by `fastmlp train`, and a CSV of its feature columns."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    data = _table(tmp_path / "train.csv", X, np.where(X[:, 0] > 0, "yes", "no"))
    model = tmp_path / "m.npz"
    assert main(["train", "--data", data, "--target", "label", "--epochs", "3", "--quiet",
                 "--save", str(model)]) == 0
    return data, model


def test_predict_refuses_outputs_that_overflow(tmp_path, iris_like, capsys):
    _, model = iris_like
    capsys.readouterr()
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n3e38,3e38\n1,1\n")
    code, err = status_and_err(["predict", str(model), str(rows)], capsys)
    assert code == 1 and "NaN or infinite for 1 of 2 rows" in err and "row 0" in err


def test_evaluate_refuses_outputs_that_overflow(tmp_path, iris_like, capsys):
    _, model = iris_like
    capsys.readouterr()
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,label\n3e38,3e38,yes\n1,1,no\n")
    code, err = status_and_err(["evaluate", str(model), str(rows), "--target", "label",
                                "--json"], capsys)
    assert code == 1 and "NaN or infinite" in err


def test_json_output_is_strict_json():
    from fastmlp.cli.common import _finite
    record = {"loss": float("nan"), "r2": np.float32(np.inf), "rows": np.int64(3),
              "values": np.array([1.0, np.nan])}
    text = json.dumps(_finite(record), allow_nan=False)
    assert json.loads(text) == {"loss": None, "r2": None, "rows": 3, "values": [1.0, None]}


def test_many_distinct_integer_targets_are_refused_under_task_auto(tmp_path, capsys,
                                                                   no_training):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 2))
    prices = rng.permutation(np.arange(1000, 3000, 2))[:1000]  # 1000 distinct integers
    data = _table(tmp_path / "prices.csv", X, prices)
    code, err = status_and_err(["train", "--data", data, "--target", "label"], capsys)
    assert code == 2 and "1000 distinct integer values" in err and "--task regress" in err


def test_one_hot_targets_never_build_a_k_by_k_matrix(monkeypatch):
    from fastmlp.cli.labels import targets
    eye = np.eye
    monkeypatch.setattr(np, "eye", lambda *a, **k: pytest.fail("np.eye called"))
    model = fastmlp.MLP(2, [(5000, "softmax")])
    T = targets(np.array([0, 4999, 7]), model)
    monkeypatch.setattr(np, "eye", eye)
    assert T.shape == (3, 5000) and T.sum() == 3 and T[1, 4999] == 1 and T[2, 7] == 1


def test_task_auto_says_what_it_chose_and_why(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    data = tmp_path / "d.npy"
    np.save(data, np.column_stack([X, (X[:, 0] > 0).astype(float)]))  # one dtype: float
    assert main(["train", "--data", str(data), "--target", "-1", "--epochs", "1",
                 "--quiet", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["task"].startswith("regression (--task auto: the target holds floats")
    assert "all 2 distinct values are whole numbers" in record["task"]
    assert "--task classify" in record["task"]


def test_task_with_a_builtin_dataset_is_refused(capsys, no_training):
    code, err = status_and_err(["train", "--dataset", "digits", "--task", "regress"], capsys)
    assert code == 2 and "--task goes with --data" in err


# -- raw tracebacks --------------------------------------------------------------------------

@pytest.mark.parametrize("layers", ["10000000000:relu,1:sigmoid", "100000000:relu,1:sigmoid"])
def test_layers_too_large_for_memory_are_a_usage_error(layers, capsys, monkeypatch):
    import fastmlp.model

    def never(*args, **kwargs):
        raise AssertionError("the model was built before its size was checked")
    monkeypatch.setattr(fastmlp.model.MLP, "__init__", never)  # refused before any buffer
    code, err = status_and_err(["train", "--dataset", "xor", "--quiet", "--layers", layers],
                               capsys)
    assert code == 2 and "do not fit in memory" in err and "GiB available" in err
    assert "--batch-size 4" in err and "smaller layers or batches" in err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_memory_estimate_is_what_a_workspace_allocates(dtype):
    from fastmlp.core.spec import NetworkSpec
    from fastmlp.core.workspace import Workspace
    spec = NetworkSpec(7, [(5, "relu"), (3, "tanh"), (2, "softmax")])
    ws = Workspace(spec, dtype)
    ws.ensure_rows(33)
    arrays = [v for v in vars(ws).values()
              if isinstance(v, np.ndarray) and v.dtype == np.dtype(dtype)]
    assert len(arrays) == 10
    assert Workspace.nbytes(spec, dtype, 33) == sum(a.nbytes for a in arrays)


@pytest.mark.parametrize("summary", [
    ["not", "a", "dict"], "text",
    {"data": "x", "epochs": 2, "batch_size": -5, "held_out": {"loss": 0.5}},
    {"data": 3, "epochs": "many", "batch_size": 10**30, "training": ["loss"]},
])
def test_info_survives_a_tampered_run_summary(tmp_path, summary, capsys):
    path = tmp_path / "m.npz"
    assert main(["train", "--dataset", "xor", "--epochs", "1", "--quiet",
                 "--save", str(path)]) == 0
    capsys.readouterr()
    (tmp_path / "m.npz.json").write_text(json.dumps(
        {"format": "fastmlp-cli", "version": 1, "summary": summary}))
    code = main(["info", str(path), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1
    if isinstance(summary, dict):
        record = json.loads(out)
        assert code == 0 and record["batch_size"] == 32 and record["flops_per_step"] > 0
    else:
        assert code == 1 and "summary" in err and "fix the file" in err


# -- item 17: what the data holds is a usage error (2), said in the data's terms -------------

def test_a_missing_target_value_exits_2_like_a_nan_feature(tmp_path, capsys, no_training):
    target = tmp_path / "t.csv"
    target.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,\n7,8,1\n")
    feature = tmp_path / "f.csv"
    feature.write_text("a,b,label\n1,nan,0\n3,4,1\n5,6,0\n7,8,1\n")
    code, err = status_and_err(["train", "--data", str(target), "--target", "label",
                                "--quiet"], capsys)
    assert code == 2 and "missing value" in err and "'label'" in err
    code, err = status_and_err(["train", "--data", str(feature), "--target", "label",
                                "--quiet"], capsys)
    assert code == 2 and "row 0 column 1" in err


def test_one_class_is_named_as_such_not_as_softmax_units(tmp_path, capsys, no_training):
    path = tmp_path / "one.csv"
    path.write_text("a,b,label\n1,2,cat\n3,4,cat\n5,6,cat\n7,8,cat\n")
    code, err = status_and_err(["train", "--data", str(path), "--target", "label",
                                "--quiet"], capsys)
    assert code == 2 and "holds one class ('cat') in every row" in err
    assert "softmax" not in err and "--task regress" in err


def test_an_empty_idx_set_says_it_has_no_rows(tmp_path, capsys, no_training):
    from tests.test_bench import write_idx
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", np.zeros((0, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.zeros(0))
    code, err = status_and_err(["train", "--dataset", "fashion", "--data-dir", str(tmp_path),
                                "--quiet"], capsys)
    assert code == 2 and "no data rows" in err and "0:softmax" not in err
