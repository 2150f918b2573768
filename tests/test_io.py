"""save/load: .npz without pickle, atomic writes, clear errors for bad files."""
import os

import numpy as np
import pytest

import fastmlp


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    model = fastmlp.MLP(4, [(5, "tanh"), (3, "softmax")], optimizer=fastmlp.AdamW(lr=0.01),
                        l2=0.01, dtype="float64", seed=1)
    model.fit(X, y, epochs=3, batch_size=8, progress=False)
    return model, X, y


def test_round_trip_restores_an_identical_model(tmp_path, trained):
    model, X, y = trained
    path = model.save(tmp_path / "model.npz")
    loaded = fastmlp.MLP.load(path)
    assert loaded.layers == model.layers and loaded.loss_name == model.loss_name
    assert loaded.optimizer == model.optimizer and loaded.l2 == model.l2
    assert loaded.dtype == model.dtype
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    # optimizer state and shuffle RNG came along: training on continues identically
    model.fit(X, y, epochs=2, batch_size=8, progress=False)
    loaded.fit(X, y, epochs=2, batch_size=8, progress=False)
    for (W, b), (lW, lb) in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(W, lW)
        np.testing.assert_array_equal(b, lb)


def test_file_holds_no_pickle(tmp_path, trained):
    model, _, _ = trained
    path = model.save(tmp_path / "m")
    assert path.endswith("m.npz")
    with np.load(path, allow_pickle=False) as data:
        assert {"meta", "params", "moment1", "moment2", "opt_step"} <= set(data.files)
    assert fastmlp.MLP.load(tmp_path / "m").layers == model.layers


def test_save_is_atomic(tmp_path, trained, monkeypatch):
    model, X, _ = trained
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before  # the earlier save is untouched
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def test_corrupt_truncated_and_mismatched_files(tmp_path, trained):
    model, _, _ = trained
    path = tmp_path / "model.npz"
    model.save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["params"] = arrays["params"][:-1]
    np.savez(tmp_path / "mismatched.npz", **arrays)
    for name, match in [("truncated.npz", "not a readable fastmlp model"),
                        ("garbage.npz", "not a readable fastmlp model"),
                        ("other.npz", "not a readable fastmlp model"),
                        ("mismatched.npz", "'params' does not match")]:
        with pytest.raises(ValueError, match=match) as info:
            fastmlp.MLP.load(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError):
        fastmlp.MLP.load(tmp_path / "missing.npz")


def test_float32_model_round_trip(tmp_path):
    model = fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")], optimizer="sgd", seed=0)
    loaded = fastmlp.MLP.load(model.save(tmp_path / "f32.npz"))
    assert loaded.dtype == np.float32 and isinstance(loaded.optimizer, fastmlp.SGD)
