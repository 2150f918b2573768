"""The main job: `fastmlp train` and `python -m fastmlp train`."""
import subprocess
import sys

import pytest

import fastmlp
from fastmlp.cli import main


def test_default_run_trains_digits_and_prints_held_out_accuracy(capsys):
    assert main(["train", "--quiet", "--epochs", "15"]) == 0
    out = capsys.readouterr().out
    assert "digits:" in out and "held-out accuracy" in out
    accuracy = float(out.split("held-out accuracy")[1].split("%")[0])
    assert accuracy > 95


@pytest.mark.parametrize("dataset", ["xor", "x2", "abs"])
def test_other_datasets(dataset, capsys):
    assert main(["train", "--dataset", dataset, "--quiet", "--epochs", "50"]) == 0
    assert f"{dataset}:" in capsys.readouterr().out


def test_options_and_save(tmp_path, capsys):
    path = tmp_path / "xor.npz"
    assert main(["train", "--dataset", "xor", "--layers", "8:tanh,1:sigmoid", "--loss", "mse",
                 "--optimizer", "sgd", "--lr", "0.5", "--epochs", "20", "--batch-size", "2",
                 "--seed", "3", "--quiet", "--save", str(path)]) == 0
    model = fastmlp.MLP.load(path)
    assert model.layers == [(8, "tanh"), (1, "sigmoid")] and model.loss_name == "mse"
    assert isinstance(model.optimizer, fastmlp.SGD) and model.optimizer.lr == 0.5


@pytest.mark.parametrize("argv,message", [
    (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["train", "--layers", "12relu"], "bad layer '12relu'"),
    (["train", "--layers", "12:swish"], "unknown activation 'swish'"),
    (["train", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
    (["train", "--lr", "-1"], "lr must be in"),
    (["train", "--epochs", "many"], "invalid int value: 'many'"),
    (["train", "--batch-size", "0"], "batch_size must be >= 1"),
    (["train", "--loss", "cross_entropy", "--dataset", "x2"], "needs a softmax output"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_options_get_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--dataset", "xor",
                             "--epochs", "5", "--quiet"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "xor:" in result.stdout
