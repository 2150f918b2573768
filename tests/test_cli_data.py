"""The CLI on real files: train on a CSV with string labels, predict, evaluate, info, export,
plot, MNIST-style files and downloads."""
import csv
import json
import os

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.datasets import idx, mnist

SPECIES = np.array(["setosa", "versicolor", "virginica"])


def blobs(n, seed):
    """Three well-separated classes in 4 features, labelled with strings."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, n)
    centres = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 3]], dtype=float)
    X = centres[codes] + 0.5 * rng.standard_normal((n, 4))
    return X, SPECIES[codes]


def write_csv(path, X, y=None, target="species"):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "c", "d"] + ([target] if y is not None else []))
        for i, row in enumerate(X):
            writer.writerow(list(row) + ([y[i]] if y is not None else []))


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def run_json(argv, capsys):
    assert main(argv + ["--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained from the shell on train.csv; test.csv and new.csv beside it."""
    pytest.importorskip("pandas", reason="pip install 'fastmlp[data]'")
    tmp = tmp_path_factory.mktemp("cli")
    X, y = blobs(240, 0)
    write_csv(tmp / "train.csv", X, y)
    X_test, y_test = blobs(60, 1)
    write_csv(tmp / "test.csv", X_test, y_test)
    write_csv(tmp / "new.csv", X_test)
    code = main(["train", "--data", str(tmp / "train.csv"), "--target", "species",
                 "--test", str(tmp / "test.csv"), "--epochs", "40", "--quiet",
                 "--save", str(tmp / "m.npz"), "--json"])
    assert code == 0
    return tmp, X_test, y_test


def test_string_labels_round_trip(trained, capsys):
    tmp, X_test, y_test = trained
    assert main(["predict", str(tmp / "m.npz"), str(tmp / "new.csv"),
                 "--out", str(tmp / "pred.csv")]) == 0
    assert "60 predictions written to" in capsys.readouterr().out
    header, rows = read_csv(tmp / "pred.csv")
    predicted = np.array([r[0] for r in rows])
    assert header == ["prediction"] and len(predicted) == 60
    assert set(predicted) <= set(SPECIES)
    # The labels are kept in the model file: MLP.predict in Python gives the same, and they
    # are the outputs' argmax mapped through the sorted labels.
    model = fastmlp.MLP.load(tmp / "m.npz")
    assert list(model.classes_) == sorted(SPECIES)
    np.testing.assert_array_equal(predicted, model.predict(X_test))
    np.testing.assert_array_equal(predicted, np.sort(SPECIES)[model.forward(X_test).argmax(1)])
    assert np.mean(predicted == y_test) > 0.9


def test_predict_leaves_out_the_target_column_and_writes_npy(trained, capsys):
    tmp, X_test, _ = trained
    assert main(["predict", str(tmp / "m.npz"), str(tmp / "test.csv"), "--target", "species",
                 "--out", str(tmp / "pred.npy")]) == 0
    assert main(["predict", str(tmp / "m.npz"), str(tmp / "new.csv")]) == 0  # CSV on stdout
    out = capsys.readouterr().out.splitlines()
    from_npy = np.load(tmp / "pred.npy")
    assert from_npy.dtype.kind == "U" and out[-61] == "prediction"
    np.testing.assert_array_equal(from_npy, out[-60:])
    assert main(["predict", str(tmp / "m.npz"), str(tmp / "test.csv")]) == 2  # the data's fault
    assert "leave that out with --target" in capsys.readouterr().err


def test_predict_proba_columns_are_the_labels(trained):
    tmp, X_test, _ = trained
    assert main(["predict", str(tmp / "m.npz"), str(tmp / "new.csv"), "--proba",
                 "--out", str(tmp / "proba.csv")]) == 0
    header, rows = read_csv(tmp / "proba.csv")
    assert header == list(SPECIES)
    proba = np.array(rows, dtype=float)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(proba, fastmlp.MLP.load(tmp / "m.npz").predict_proba(X_test),
                               atol=1e-6)


def test_evaluate_matches_the_model(trained, capsys):
    tmp, X_test, y_test = trained
    result = run_json(["evaluate", str(tmp / "m.npz"), str(tmp / "test.csv"),
                       "--target", "species"], capsys)
    model = fastmlp.MLP.load(tmp / "m.npz")
    expected = model.evaluate(X_test, y_test)
    assert result["rows"] == 60
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert main(["evaluate", str(tmp / "m.npz"), str(tmp / "test.csv"), "--target",
                 "species"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_info_reports_layers_flops_and_the_run(trained, capsys):
    tmp = trained[0]
    assert main(["info", str(tmp / "m.npz")]) == 0
    text = capsys.readouterr().out
    assert "relu" in text and "softmax" in text and "FLOPs per training step" in text
    assert "at batch size 32" in text  # the batch size it was trained with
    assert "classes (3): 'setosa', 'versicolor', 'virginica'" in text
    assert "trained on train.csv: 40 epochs" in text and "held-out loss" in text
    assert "accuracy " in text and "%" in text.split("held-out")[1]
    record = run_json(["info", str(tmp / "m.npz"), "--batch-size", "10"], capsys)
    assert record["layers"] == [[64, "relu"], [3, "softmax"]] and record["dtype"] == "float32"
    assert record["parameters"] == 4 * 64 + 64 + 64 * 3 + 3
    assert record["flops_per_step"] == 2 * 10 * (2 * (4 * 64 + 64 * 3) + 64 * 3)
    assert record["training"]["epochs"] == 40
    # the name without .npz, as MLP.load and predict take it: the same run is found
    assert run_json(["info", str(tmp / "m")], capsys)["training"]["epochs"] == 40


def test_info_on_a_model_saved_from_python(tmp_path, capsys):
    path = fastmlp.MLP(3, [(2, "sigmoid")], seed=0).save(tmp_path / "py.npz")
    assert main(["info", path]) == 0
    assert "no training summary" in capsys.readouterr().out


def test_info_does_not_pass_off_an_earlier_run_as_this_model(tmp_path, capsys):
    """A model saved over from Python (or by a run stopped between its two files) left the
    earlier run's summary beside it, and info reported that run (data, epochs, accuracy)
    for the new model. The summary keeps the digest of the file it describes."""
    path = tmp_path / "m.npz"
    assert main(["train", "--dataset", "xor", "--epochs", "3", "--quiet", "--save",
                 str(path)]) == 0
    capsys.readouterr()
    assert run_json(["info", str(path)], capsys)["training"]["epochs"] == 3
    fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")], seed=5).save(path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "describes an earlier model" in out and "3 epochs" not in out
    assert run_json(["info", str(path)], capsys)["training"] is None


def test_export_from_the_shell(trained, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    tmp, X_test, _ = trained
    record = run_json(["export", str(tmp / "m.npz"), "--onnx", str(tmp / "m.onnx")], capsys)
    assert record["out"] == str(tmp / "m.onnx")
    session = ort.InferenceSession(str(tmp / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": X_test.astype(np.float32)})[0]
    np.testing.assert_allclose(got, fastmlp.MLP.load(tmp / "m.npz").forward(X_test),
                               atol=1e-5)
    # the string labels the columns stand for travel with the file, and are said
    import onnx
    props = {p.key: p.value for p in onnx.load(str(tmp / "m.onnx")).metadata_props}
    assert json.loads(props["classes"]) == sorted(SPECIES.tolist())
    assert record["classes"] == sorted(SPECIES.tolist())
    assert main(["export", str(tmp / "m.npz"), "--onnx", str(tmp / "m2.onnx")]) == 0
    assert "'setosa'" in capsys.readouterr().out


@pytest.mark.parametrize("option, name, meant", [("--torch", "x.onnx", "--onnx"),
                                                 ("--onnx", "x.pt2", "--torch")])
def test_export_refuses_a_file_name_of_the_other_format(trained, capsys, option, name, meant):
    tmp, _, _ = trained
    code = main(["export", str(tmp / "m.npz"), option, str(tmp / name)])
    err = capsys.readouterr().err
    assert code == 2 and meant in err and not (tmp / name).exists()


def test_regression_from_a_csv_reports_r2(tmp_path, capsys):
    pytest.importorskip("pandas", reason="pip install 'fastmlp[data]'")
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.01 * rng.standard_normal(200)
    write_csv(tmp_path / "r.csv", X, y, target="value")
    record = run_json(["train", "--data", str(tmp_path / "r.csv"), "--target", "value",
                       "--epochs", "60", "--quiet", "--save", str(tmp_path / "r.npz")], capsys)
    assert record["held_out"]["r2"] > 0.9 and record["test_rows"] == 40
    assert main(["predict", str(tmp_path / "r.npz"), str(tmp_path / "r.csv"), "--target",
                 "value", "--out", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").dtype == np.float32
    assert main(["predict", str(tmp_path / "r.npz"), str(tmp_path / "r.csv"), "--target",
                 "value", "--proba"]) == 2
    assert "--proba needs a classifier" in capsys.readouterr().err


def test_test_split_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    X, y = blobs(100, 2)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    record = run_json(["train", "--data", str(tmp_path / "d.npz"), "--target", "y",
                       "--test-split", "0.3", "--epochs", "5", "--quiet", "--plot",
                       str(tmp_path / "run.png"), "--validation-split", "0.2"], capsys)
    assert (record["test_rows"], record["rows"], record["validation_rows"]) == (30, 56, 14)
    assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"


def write_fashion(directory, n_train=60, n_test=20):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        # Each class lights its own band of rows, so even a few epochs separate them.
        images = (rng.integers(0, 40, (n, 28, 28))).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label:2 * label + 3] = 250
        image_name, label_name = mnist.FILES[split]
        idx.write_idx(directory / (image_name + ".gz"), images)
        idx.write_idx(directory / (label_name + ".gz"), labels)


def test_train_on_fashion_files(tmp_path, capsys):
    write_fashion(tmp_path)
    record = run_json(["train", "--dataset", "fashion", "--data-dir", str(tmp_path),
                       "--layers", "32:relu,10:softmax", "--epochs", "10", "--batch-size",
                       "16", "--quiet"], capsys)
    assert record["data"] == "fashion" and record["test_rows"] == 20
    assert record["held_out"]["accuracy"] > 0.5
    assert main(["train", "--dataset", "fashion", "--data-dir", str(tmp_path), "--layers",
                 "32:relu,10:softmax", "--epochs", "10", "--batch-size", "16", "--quiet",
                 "--save", str(tmp_path / "f.npz")]) == 0
    capsys.readouterr()
    result = run_json(["evaluate", str(tmp_path / "f.npz"), "--dataset", "fashion",
                       "--data-dir", str(tmp_path)], capsys)
    assert result["rows"] == 20 and result["accuracy"] == record["held_out"]["accuracy"]
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "not found" in err and "fastmlp download mnist" in err


def test_download_from_the_shell(monkeypatch, tmp_path, capsys):
    from tests.test_datasets import Server
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "cache"))
    server = Server()
    try:
        write_fashion(tmp_path)
        for name in mnist.FILES["train"] + mnist.FILES["test"]:
            server.files[name + ".gz"] = (tmp_path / (name + ".gz")).read_bytes()
        monkeypatch.setenv("FASTMLP_FASHION_MIRROR", server.url)
        # The published checksums do not match these files: refused, nothing kept.
        assert main(["download", "fashion", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert "checksum mismatch" in err and len(err.strip().splitlines()) == 1
        assert not os.path.exists(tmp_path / "cache" / "datasets" / "fashion")
        import hashlib
        monkeypatch.setitem(mnist.CHECKSUMS, "fashion", {
            n: hashlib.md5(b).hexdigest() for n, b in server.files.items()})
        record = run_json(["download", "fashion", "--quiet"], capsys)
        assert len(record["files"]) == 4 and all(os.path.isfile(p) for p in record["files"])
    finally:
        server.close()


def test_a_model_fitted_in_python_on_labels_predicts_them(tmp_path, capsys):
    X, y = blobs(60, 3)
    np.save(tmp_path / "x.npy", X)
    model = fastmlp.MLP(4, [(3, "softmax")], seed=0)
    model.fit(X, y, epochs=30, progress=False)
    path = model.save(tmp_path / "m.npz")
    assert main(["predict", path, str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "prediction"
    np.testing.assert_array_equal(out[1:], model.predict(X))
