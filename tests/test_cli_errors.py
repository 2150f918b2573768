"""The CLI's failures: checked before work, one line, exit 1 (work failed) or 2 (usage), and
a trained model never lost to a bad --save path."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from tests.cli_helpers import status_and_err


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if anything is trained or benchmarked."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(fastmlp.MLP, "fit", refuse)
    from fastmlp.bench import run as bench
    monkeypatch.setattr(bench, "run_bench", refuse)


@pytest.mark.parametrize("argv,message", [
    (["train", "--dataset", "xor", "--save", "/nonexistent/dir/m.npz"],
     "directory '/nonexistent/dir' does not exist"),
    (["train", "--dataset", "xor", "--plot", "/nonexistent/dir/run.png"],
     "directory '/nonexistent/dir' does not exist"),
    (["bench", "--json", "/nonexistent/x.json"], "directory '/nonexistent' does not exist"),
    (["predict", "m.npz", "d.csv", "--out", "/nonexistent/p.csv"], "does not exist"),
    (["export", "m.npz", "--onnx", "/nonexistent/m.onnx"], "does not exist"),
])
def test_unwritable_outputs_are_refused_before_any_work(argv, message, capsys, no_training):
    code, err = status_and_err(argv, capsys)
    assert code == 2 and message in err and "nothing was done" in err


def test_save_to_a_directory_is_refused(tmp_path, capsys, no_training):
    code, err = status_and_err(["train", "--dataset", "xor", "--save", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err


def test_a_save_that_fails_after_training_keeps_the_model(tmp_path, monkeypatch, capsys):
    # The directory disappears while the model trains: the check before training passed,
    # the save fails, and the model goes to a temporary file whose name is printed.
    target = tmp_path / "gone"
    target.mkdir()
    fit = fastmlp.MLP.fit

    def fit_then_remove(self, *args, **kwargs):
        history = fit(self, *args, **kwargs)
        shutil.rmtree(target)
        return history

    monkeypatch.setattr(fastmlp.MLP, "fit", fit_then_remove)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    code, err = status_and_err(["train", "--dataset", "xor", "--epochs", "3", "--quiet",
                                "--save", str(target / "m.npz")], capsys)
    assert code == 1 and "could not save the model to" in err
    rescued = err.split("saved to '")[1].split("'")[0]
    assert rescued.startswith(str(tmp_path)) and fastmlp.MLP.load(rescued).layers[-1] == \
        (1, "sigmoid")
    assert os.path.isfile(rescued + ".json")


@pytest.mark.parametrize("argv,message", [
    (["bench", "--seconds", "nan"], "must be a finite number > 0"),
    (["bench", "--seconds", "-1"], "must be a finite number > 0"),
    (["bench", "--seconds", "inf"], "must be a finite number > 0"),
    (["bench", "--repeats", "0"], "must be an integer >= 1"),
    (["bench", "--repeats", "-2"], "must be an integer >= 1"),
    (["train", "--seed", "99999999999999999999999"], "seeds are integers in [0, 2**63)"),
    (["train", "--seed", "-1"], "seeds are integers in [0, 2**63)"),
    (["train", "--seed", "1.5"], "invalid seed '1.5'"),
    (["train", "--layers", "-5:relu,1:sigmoid"], "bad layer '-5:relu': a layer needs at "
                                                 "least 1 unit"),
    (["train", "--layers", "-x"], "bad layer '-x'"),
    (["train", "--save", "--quiet"], "expected one argument"),
    (["train", "--test-split", "1.5"], "must be a fraction in [0, 1)"),
    (["train", "--data", "x.csv"], "--data needs --target COLUMN"),
    (["train", "--target", "y"], "--target goes with --data"),
    (["train", "--dataset", "xor", "--data-dir", "/tmp"], "are for --dataset mnist or fashion"),
    (["train", "--dataset", "xor", "--data", "x.csv"], "not allowed with argument"),
    (["export", "m.npz"], "one of the arguments --onnx --torch is required"),
    (["evaluate", "m.npz", "d.csv"], "DATA needs --target COLUMN"),
    (["evaluate", "m.npz"], "give DATA --target COLUMN, or --dataset mnist|fashion"),
    (["evaluate", "m.npz", "d.csv", "--dataset", "mnist"], "give DATA --target COLUMN, or"),
    (["download", "cifar"], "invalid choice: 'cifar'"),
])
def test_bad_values_get_a_useful_line_and_status_2(argv, message, capsys, no_training):
    code, err = status_and_err(argv, capsys)
    assert code == 2 and message in err


def test_no_command_prints_help_and_status_2(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "export", "info",
                                     "download", "bench"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and "usage: fastmlp " + command in capsys.readouterr().out


def test_largest_seed_is_accepted(capsys):
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--seed",
                 str(2**63 - 1)]) == 0
    assert "held-out accuracy" in capsys.readouterr().out


def test_mse_on_a_classification_dataset_one_hots_the_labels(capsys):
    # A CLI user cannot pass (samples, 10) targets: the CLI builds them.
    assert main(["train", "--dataset", "digits", "--loss", "mse", "--epochs", "3",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert float(out.split("held-out accuracy")[1].split("%")[0]) > 50


def test_output_layer_too_small_for_the_classes(capsys):
    code, err = status_and_err(["train", "--dataset", "digits", "--layers", "8:relu,3:softmax",
                                "--quiet"], capsys)
    assert code == 2 and "10 classes but the output layer has 3" in err and "10:softmax" in err


def test_unreadable_inputs_exit_1(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    code, err = status_and_err(["info", str(tmp_path / "missing.npz")], capsys)
    assert code == 1 and "no fastmlp model file" in err
    code, err = status_and_err(["info", str(tmp_path / "bad.npz")], capsys)
    assert code == 1 and "not a readable fastmlp model file" in err
    pytest.importorskip("pandas", reason="pip install 'fastmlp[data]'")
    model = fastmlp.MLP(2, [(1, "sigmoid")]).save(tmp_path / "m.npz")
    code, err = status_and_err(["predict", model, str(tmp_path / "nope.csv")], capsys)
    assert code == 1 and "no such data file" in err
    code, err = status_and_err(["evaluate", model, str(tmp_path / "d.csv"), "--target", "c"],
                               capsys)
    assert code == 2 and "no column 'c'" in err  # a wrong --target: a usage error
    (tmp_path / "e.csv").write_text("a,b,y\n1,2,7\n")
    code, err = status_and_err(["evaluate", model, str(tmp_path / "e.csv"), "--target", "y"],
                               capsys)
    assert code == 1 and "label(s) 7 that the model was not trained on" in err


def test_bench_on_cuda_without_a_gpu_is_one_line():
    from fastmlp.cuda.device import gpu_present
    if gpu_present():
        pytest.skip("a GPU is present: `fastmlp bench --device cuda` would run")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    result = subprocess.run([sys.executable, "-m", "fastmlp", "bench", "--device", "cuda",
                             "--workload", "xor", "--seconds", "0.01", "--repeats", "1",
                             "--no-peers"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("fastmlp bench: error: ") and "cuda" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_early_stopping_passes_through(capsys):
    argv = ["train", "--dataset", "digits", "--epochs", "200", "--quiet", "--json",
            "--early-stopping", "--patience", "2", "--lr", "0.01"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["stopped_early"] and record["epochs"] < 200
    assert record["validation_rows"] > 0


def test_schedule_passes_through(capsys):
    try:
        from fastmlp.core import schedules
    except ImportError:
        code, err = status_and_err(["train", "--dataset", "xor", "--schedule", "cosine"],
                                   capsys)
        assert code == 2 and "no fastmlp.schedules" in err
        pytest.skip("fastmlp.schedules is not in this build: only its absence was checked")
    record = json.loads(capsys.readouterr().out) if main(
        ["train", "--dataset", "xor", "--epochs", "20", "--lr", "0.05", "--quiet", "--json",
         "--schedule", "step:step_size=5,gamma=0.5"]) == 0 else None
    assert record is not None and record["final_lr"] == pytest.approx(0.05 * 0.5 ** 3)
    for spec, message in (("warp-drive", "unknown schedule 'warp-drive'"),
                          ("cosine:warmup", "write options as KEY=VALUE"),
                          ("step:gamma=0.5", "step_size")):
        code, err = status_and_err(["train", "--dataset", "xor", "--schedule", spec], capsys)
        assert code == 2 and message in err


def test_python_dash_m_reports_status_1_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastmlp", "info",
                             str(tmp_path / "none.npz")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert np.char.startswith(result.stderr, "fastmlp info: error:")


def test_regression_on_text_targets_is_a_usage_error(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", X=np.zeros((10, 2)), y=np.array(["a", "b"] * 5))
    code, err = status_and_err(["train", "--data", str(tmp_path / "d.npz"), "--target", "y",
                                "--task", "regress"], capsys)
    assert code == 2 and "regression needs numeric targets" in err


def test_a_closed_pipe_ends_predict_quietly(tmp_path):
    model = fastmlp.MLP(2, [(1, "identity")], seed=0).save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.zeros((50_000, 2)))  # far more output than a pipe buffers
    process = subprocess.Popen([sys.executable, "-m", "fastmlp", "predict", model,
                                str(tmp_path / "x.npy")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout.readline() == b"prediction\n"
    process.stdout.close()  # what `| head -1` does
    err = process.stderr.read().decode()
    process.wait(timeout=300)
    assert err == "" and process.returncode == 1


def test_every_train_option_has_help_text():
    from fastmlp.cli.parser import build_parser
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items()
                 if a[0] == "train")[1]
    bare = [a.option_strings[0] for a in train._actions
            if a.option_strings and not a.help]
    assert bare == [], bare
