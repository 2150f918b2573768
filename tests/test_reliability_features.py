"""Feature names and labels (issue 23 items 4 and 11): a table's columns are read by name, not
position; labels survive save/load exactly and are refused before training when they could
not be saved; a CSV's label column keeps its leading zeros."""
import warnings

import numpy as np
import pandas as pd
import pytest

from fastmlp import MLP
from fastmlp.cli import main
from fastmlp.inputs.features import column_order, names_of


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """iris as a CSV with text labels, the same columns reversed, and a model trained on it
    (saved by the CLI)."""
    from sklearn.datasets import load_iris
    root = tmp_path_factory.mktemp("iris")
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame.to_csv(root / "iris.csv", index=False)
    frame[list(frame.columns[::-1])].to_csv(root / "reversed.csv", index=False)
    frame.drop(columns=["petal width (cm)"]).assign(extra=1.0).to_csv(root / "other.csv",
                                                                       index=False)
    assert main(["train", "--data", str(root / "iris.csv"), "--target", "target",
                 "--epochs", "60", "--seed", "0", "--quiet", "--test-split", "0",
                 "--save", str(root / "m.npz")]) == 0
    return root, frame


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# -- the CLI -----------------------------------------------------------------------------

def test_cli_evaluate_reads_a_reordered_table_by_name(iris, capsys):
    root, _ = iris
    code, same, _ = _run(["evaluate", str(root / "m.npz"), str(root / "iris.csv"),
                          "--target", "target", "--json"], capsys)
    assert code == 0
    code, swapped, _ = _run(["evaluate", str(root / "m.npz"), str(root / "reversed.csv"),
                             "--target", "target", "--json"], capsys)
    assert code == 0
    assert swapped.replace("reversed", "iris") == same  # the same accuracy and loss


def test_cli_predict_reads_a_reordered_table_by_name(iris, capsys, tmp_path):
    root, frame = iris
    features = frame.drop(columns=["target"])
    features.to_csv(tmp_path / "a.csv", index=False)
    features[list(features.columns[::-1])].to_csv(tmp_path / "b.csv", index=False)
    for name in ("a", "b"):
        assert _run(["predict", str(root / "m.npz"), str(tmp_path / f"{name}.csv"),
                     "--out", str(tmp_path / f"{name}.out.csv")], capsys)[0] == 0
    assert (tmp_path / "a.out.csv").read_text() == (tmp_path / "b.out.csv").read_text()


def test_cli_refuses_missing_and_extra_columns_naming_them(iris, capsys, tmp_path):
    root, _ = iris
    code, _, err = _run(["evaluate", str(root / "m.npz"), str(root / "other.csv"),
                         "--target", "target"], capsys)
    assert code == 1 and "missing 'petal width (cm)'" in err and "'extra'" in err


def test_cli_train_checks_the_test_file_columns_before_training(iris, capsys, tmp_path):
    root, _ = iris
    code, _, err = _run(["train", "--data", str(root / "iris.csv"), "--target", "target",
                         "--test", str(root / "other.csv"), "--quiet",
                         "--save", str(tmp_path / "n.npz")], capsys)
    assert code == 2 and "missing 'petal width (cm)'" in err and "nothing was trained" in err
    assert not (tmp_path / "n.npz").exists()
    # the same columns in another order are read by name
    code, out, _ = _run(["train", "--data", str(root / "iris.csv"), "--target", "target",
                         "--test", str(root / "reversed.csv"), "--epochs", "60", "--seed",
                         "0", "--quiet"], capsys)
    assert code == 0 and float(out.split("held-out accuracy ")[1].split("%")[0]) > 80


def test_cli_saves_the_feature_names(iris):
    root, frame = iris
    model = MLP.load(root / "m.npz")
    assert list(model.feature_names_in_) == list(frame.columns[:-1])


# -- MLP ---------------------------------------------------------------------------------

def _frame_model():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int).to_numpy()
    model = MLP(3, [(4, "relu"), (2, "softmax")], seed=0)
    model.fit(X, y, epochs=2, progress=False)
    return model, X, y


def test_mlp_keeps_names_reorders_by_them_and_saves_them(tmp_path):
    model, X, y = _frame_model()
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    swapped = X[["c", "a", "b"]]
    np.testing.assert_array_equal(model.forward(swapped), model.forward(X))
    assert model.evaluate(swapped, y) == model.evaluate(X, y)
    assert model.loss(swapped, y) == model.loss(X, y)
    loaded = MLP.load(model.save(tmp_path / "m"))
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded.predict(swapped), model.predict(X))


@pytest.mark.parametrize("columns, words", [(["a", "b", "d"], ["missing 'c'", "'d'"]),
                                             (["a", "b"], ["missing 'c'"])])
def test_mlp_refuses_other_names(columns, words):
    model, X, y = _frame_model()
    other = pd.DataFrame(np.zeros((2, len(columns))), columns=columns)
    with pytest.raises(ValueError) as info:
        model.predict(other)
    assert all(word in str(info.value) for word in words)


def test_mlp_takes_arrays_with_scikit_learns_warnings():
    model, X, y = _frame_model()
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(model.forward(X.to_numpy()), model.forward(X))
    plain = MLP(3, [(2, "softmax")], seed=0)
    plain.fit(X.to_numpy(), y, epochs=1, progress=False)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        plain.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.predict(X.to_numpy())  # no names on either side: no warning


def test_old_files_without_names_load(tmp_path):
    model = MLP(3, [(2, "softmax")], seed=0)
    loaded = MLP.load(model.save(tmp_path / "m"))
    assert loaded.feature_names_in_ is None


def test_reset_forgets_names():
    model, X, y = _frame_model()
    assert model.reset().feature_names_in_ is None


def test_names_of_and_column_order():
    assert names_of(np.zeros((2, 2))) is None
    assert names_of(pd.DataFrame(np.zeros((1, 2)))) is None  # integer column names
    with pytest.raises(TypeError, match="all be strings"):
        names_of(pd.DataFrame(np.zeros((1, 2)), columns=["a", 1]))
    assert column_order(["a", "b"], ["a", "b"], "t") is None
    assert list(column_order(["b", "a"], ["a", "b"], "t")) == [1, 0]
    with pytest.raises(ValueError, match="more than once"):
        column_order(["a", "a"], ["a", "b"], "t")


def test_tampered_feature_names_are_refused(tmp_path):
    from fastmlp import io
    model, X, y = _frame_model()
    path = model.save(tmp_path / "m")
    meta, arrays = io.read(path)
    for bad in (["a", "b"], ["a", "a", "b"], [1, 2, 3], "abc"):
        io.write(path, {**{k: v for k, v in meta.items() if k not in ("format", "version")},
                        "feature_names": bad}, arrays)
        with pytest.raises(ValueError, match="feature names|features|more than once"):
            MLP.load(path)


# -- labels (item 11) ---------------------------------------------------------------------

def test_uint64_labels_above_2_63_round_trip_exactly(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.where(X[:, 0] > 0, np.uint64(2**64 - 1), np.uint64(5))
    model = MLP(2, [(2, "softmax")], seed=0)
    model.fit(X, y, progress=False)
    loaded = MLP.load(model.save(tmp_path / "m"))
    assert loaded.classes_.dtype == np.uint64
    np.testing.assert_array_equal(loaded.classes_, [5, 2**64 - 1])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_bytes_labels_are_refused_before_training(monkeypatch):
    model = MLP(2, [(2, "softmax")], seed=0)
    with pytest.raises(TypeError, match="bytes labels"):
        model.fit(np.zeros((4, 2)), np.array([b"a", b"b", b"a", b"b"]), progress=False)
    assert model.classes_ is None


def test_mixed_text_and_number_labels_get_a_clear_message():
    model = MLP(2, [(2, "softmax")], seed=0)
    with pytest.raises(TypeError, match="mixes text and non-text labels"):
        model.fit(np.zeros((4, 2)), np.array([1, "a", 1, "a"], dtype=object), progress=False)


def test_cli_keeps_leading_zero_labels_apart(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 2)), columns=["u", "v"])
    frame["label"] = ["001", "01"] * 20
    frame.to_csv(tmp_path / "z.csv", index=False)
    code, _, _ = _run(["train", "--data", str(tmp_path / "z.csv"), "--target", "label",
                       "--epochs", "1", "--quiet", "--save", str(tmp_path / "z.npz")], capsys)
    assert code == 0
    assert list(MLP.load(tmp_path / "z.npz").classes_) == ["001", "01"]


def test_cli_still_reads_numeric_targets_as_numbers(tmp_path):
    from fastmlp.datasets import load_table
    (tmp_path / "n.csv").write_text("a,y\n1,2\n3,4.5\n")
    (tmp_path / "b.csv").write_text("a,y\n1,True\n3,false\n")
    assert load_table(tmp_path / "n.csv", "y")[1].dtype == np.float64
    assert load_table(tmp_path / "n.csv", -1)[1].tolist() == [2.0, 4.5]
    assert load_table(tmp_path / "b.csv", "y")[1].tolist() == [True, False]


# -- unclear messages (item 17) -------------------------------------------------------------

def test_patience_without_early_stopping_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(MLP, "fit", lambda *a, **k: pytest.fail("trained"))
    code, _, err = _run(["train", "--dataset", "xor", "--patience", "3", "--quiet"], capsys)
    assert code == 2 and "--patience goes with --early-stopping" in err


def test_predict_adds_the_target_hint_only_where_it_helps(tmp_path, capsys):
    model = MLP(2, [(2, "softmax")], seed=0)
    path = model.save(tmp_path / "m")
    (tmp_path / "bad.npy").write_bytes(b"")  # unreadable: no column is the target
    code, _, err = _run(["predict", path, str(tmp_path / "bad.npy")], capsys)
    assert code == 1 and "not a readable .npy file" in err and "--target" not in err
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,x\n")
    code, _, err = _run(["predict", path, str(tmp_path / "t.csv")], capsys)
    assert code == 2 and "leave that out with --target" in err  # what the table holds: usage


def test_a_npy_name_holding_a_damaged_zip_is_one_line_exit_1(tmp_path, capsys):
    """np.load reads a file that starts with "PK" as an .npz archive whatever its name: a
    damaged one raised zipfile.BadZipFile through the CLI (found by tests/test_fuzz_cli.py)."""
    model = MLP(2, [(2, "softmax")], seed=0)
    path = model.save(tmp_path / "m")
    (tmp_path / "x.npy").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    code, _, err = _run(["predict", path, str(tmp_path / "x.npy")], capsys)
    assert code == 1 and "not a readable .npy file" in err and "Traceback" not in err


def test_a_npy_header_numpy_cannot_parse_is_one_line_exit_1(tmp_path, capsys):
    """A .npy header with NUL bytes made numpy's fallback header parser raise
    tokenize.TokenError through the CLI (found by the nightly fuzz)."""
    model = MLP(2, [(2, "softmax")], seed=0)
    path = model.save(tmp_path / "m")
    header = (b"{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }" + b" " * 47
              + b"\x00" * 13 + b"(")
    (tmp_path / "t.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                     + header)
    code, _, err = _run(["predict", path, str(tmp_path / "t.npy")], capsys)
    assert code == 1 and "not a readable .npy file" in err and "Traceback" not in err
