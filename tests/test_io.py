"""save/load: .npz without pickle, atomic writes, clear errors for bad files."""
import errno
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import files, io


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


# -- the file format alone (io.write / io.read) and the failure modes of a save --------------


TEMP_GLOB = ".fastmlp-*.tmp"


def test_write_read_round_trip_with_extra_entries(tmp_path):
    meta = {"n": 3, "names": ["a", "b"], "nested": {"x": None}}
    arrays = {"w": np.arange(6.0).reshape(2, 3), "classes": np.array(["cat", "dog"]),
              "steps": np.array(7, np.int64)}
    path = io.write(tmp_path / "f", meta, arrays)
    assert path.endswith("f.npz")
    got_meta, got = io.read(tmp_path / "f")
    assert got_meta == {"format": io.FORMAT, "version": io.FORMAT_VERSION, **meta}
    assert set(got) == set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(got[name], arrays[name])
        assert got[name].dtype == arrays[name].dtype


def test_write_refuses_what_read_could_not_restore(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        io.write(tmp_path / "f.npz", {}, {"labels": np.array([1, "a"], dtype=object)})
    with pytest.raises(ValueError, match="written by fastmlp.io itself"):
        io.write(tmp_path / "f.npz", {"version": 9}, {})
    with pytest.raises(TypeError, match="JSON"):
        io.write(tmp_path / "f.npz", {"x": object()}, {})
    with pytest.raises(ValueError, match="'meta'"):
        io.write(tmp_path / "f.npz", {}, {"meta": np.zeros(2)})
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        io.write(3, {}, {})
    assert list(tmp_path.iterdir()) == []


def test_io_module_does_not_import_the_model():
    """io.py is the file format; the model's own code builds models from what it reads."""
    import ast
    tree = ast.parse(open(io.__file__).read())
    imported = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in tree.body if isinstance(node, ast.Import)
                 for alias in node.names]
    assert not [name for name in imported if name and "model" in name]


def test_version_check_reads_older_and_refuses_newer(tmp_path, trained):
    model, X, _ = trained
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    # a version-1 file with entries this reader does not know loads as before
    meta_extra = dict(meta, comment="added later", history={"loss": [1.0]})
    np.savez(tmp_path / "extra.npz", **dict(arrays, meta=np.array(json.dumps(meta_extra)),
                                            classes=np.array(["a", "b", "c"])))
    np.testing.assert_array_equal(fastmlp.MLP.load(tmp_path / "extra.npz").forward(X),
                                  model.forward(X))
    newer = dict(meta, version=io.FORMAT_VERSION + 1)
    np.savez(tmp_path / "newer.npz", **dict(arrays, meta=np.array(json.dumps(newer))))
    with pytest.raises(ValueError, match="newer fastmlp.*upgrade"):
        fastmlp.MLP.load(tmp_path / "newer.npz")
    for bad in (0, "1", True, None):
        np.savez(tmp_path / "bad.npz", **dict(arrays, meta=np.array(json.dumps(
            dict(meta, version=bad)))))
        with pytest.raises(ValueError, match="version"):
            fastmlp.MLP.load(tmp_path / "bad.npz")


def test_loading_a_npy_file_is_a_clear_value_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"a\.npy.*single-array \.npy file"):
        fastmlp.MLP.load(tmp_path / "a.npy")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz.*not a readable fastmlp model"):
        fastmlp.MLP.load(tmp_path / "empty.npz")


def test_directory_paths_are_refused_naming_the_path(tmp_path, trained):
    model, _, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "dir.npz").mkdir()
    for path in (str(models) + os.sep, models, tmp_path / "dir.npz", tmp_path / "dir"):
        with pytest.raises(ValueError, match="names a directory") as info:
            model.save(path)
        assert os.fspath(path) in str(info.value)
        with pytest.raises(ValueError, match="names a directory"):
            fastmlp.MLP.load(path)
    assert list(models.iterdir()) == [] and list((tmp_path / "dir.npz").iterdir()) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "missing" / "m.npz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        model.save(tmp_path / "file" / "m.npz")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_mode_numpy_gives(tmp_path, trained, umask):
    model, _, _ = trained
    old = os.umask(umask)
    try:
        model.save(tmp_path / "ours.npz")
        np.savez(tmp_path / "numpys.npz", a=np.zeros(1))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "ours.npz").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "numpys.npz").st_mode) == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_overwriting_keeps_the_files_mode_and_symlink(tmp_path, trained):
    model, X, _ = trained
    path = tmp_path / "m.npz"
    model.save(path)
    os.chmod(path, 0o640)
    link = tmp_path / "link.npz"
    link.symlink_to(path)
    model.fit(X, np.zeros(len(X), int), epochs=1, progress=False)
    assert model.save(link) == str(link)  # the link's name: a summary goes beside it
    assert link.is_symlink() and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    np.testing.assert_array_equal(fastmlp.MLP.load(path).forward(X), model.forward(X))


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_every_atomic_write_goes_through_a_link_and_keeps_it(tmp_path):
    """files.atomic_write (run summaries, exports, predictions, downloads) replaced a link
    with a file of its own, leaving the file it pointed to as it was."""
    from fastmlp.files import atomic_write
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert atomic_write(link, lambda f: f.write("new"), text=True) == str(link)
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "real")) == ["out.csv"]  # no temporary file left


def _raise(error_number):
    def fail(*args, **kwargs):
        raise OSError(error_number, os.strerror(error_number))
    return fail


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_is_a_clear_error_and_keeps_the_previous_file(tmp_path, trained,
                                                                 monkeypatch, where):
    model, X, y = trained
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    model.fit(X, y, epochs=1, progress=False)
    # ENOSPC surfaces at write() on some filesystems, only at fsync() on others
    monkeypatch.setattr(np, "savez", _raise(errno.ENOSPC)) if where == "write" else \
        monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    with pytest.raises(OSError, match="no space left") as info:
        model.save(path)
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert "previous file" in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("error_number", [errno.EACCES, errno.EROFS])
def test_read_only_directory_is_a_clear_error_and_keeps_the_previous_file(
        tmp_path, trained, monkeypatch, error_number):
    model, _, _ = trained
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    real_open = os.open

    def refuse_new_files(file, flags, *args, **kwargs):
        # what a read-only (or not writable) directory does; running as root, chmod cannot
        if flags & os.O_CREAT and os.path.dirname(os.fspath(file)) == str(tmp_path):
            raise OSError(error_number, os.strerror(error_number), file)
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_new_files)
    with pytest.raises(PermissionError if error_number == errno.EACCES else OSError,
                       match="read-only or not writable") as info:
        model.save(path)
    assert info.value.errno == error_number and str(tmp_path) in str(info.value)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.skipif(not hasattr(os, "O_DIRECTORY"), reason="directory fsync is POSIX")
def test_the_directory_is_flushed_after_the_rename(tmp_path, trained, monkeypatch):
    model, _, _ = trained
    real_fsync, synced = os.fsync, []

    def fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    model.save(tmp_path / "m.npz")
    assert synced == ["file", "dir"]


@pytest.mark.skipif(os.name != "posix", reason="stale temp files are recognised on POSIX")
def test_a_save_removes_temp_files_of_dead_writers_only(tmp_path, trained):
    model, _, _ = trained
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = files.host()
    stale = tmp_path / f".fastmlp-{dead.pid}-0123abcd.{host}.tmp"
    live = tmp_path / f".fastmlp-{os.getpid()}-0123abcd.{host}.tmp"
    elsewhere = tmp_path / f".fastmlp-{dead.pid}-0123abcd.otherhost.tmp"
    unrelated = tmp_path / ".fastmlp-notes.tmp"
    for f in (stale, live, elsewhere, unrelated):
        f.write_bytes(b"partial")
    model.save(tmp_path / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, elsewhere.name, unrelated.name, "m.npz"])


def test_impossible_file_names_are_value_errors_naming_the_path(tmp_path, trained):
    model, _, _ = trained
    for path, match in [(str(tmp_path / "a\0b.npz"), "NUL"),
                        (tmp_path / ("x" * 300 + ".npz"), "too long"),
                        ("", "empty")]:
        with pytest.raises(ValueError, match=match) as info:
            model.save(path)
        assert "path" in str(info.value) or os.fspath(path) in str(info.value)
    for path, error in [(str(tmp_path / "a\0b.npz"), ValueError), (b"", ValueError),
                        (None, TypeError), (3, TypeError)]:
        with pytest.raises(error, match="path"):
            fastmlp.MLP.load(path)
    assert os.listdir(tmp_path) == []


def test_check_writable_finds_what_a_save_would_meet_and_leaves_nothing(tmp_path,
                                                                         monkeypatch):
    assert io.check_writable(tmp_path / "m") == str(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="names a directory"):
        io.check_writable(str(tmp_path / "d") + os.sep)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.check_writable(tmp_path / "missing" / "m.npz")
    monkeypatch.setattr(os, "open", _raise(errno.EROFS))
    with pytest.raises(OSError, match="read-only") as info:
        io.check_writable(tmp_path / "m.npz")
    assert info.value.errno == errno.EROFS
    assert sorted(os.listdir(tmp_path)) == ["d"]
