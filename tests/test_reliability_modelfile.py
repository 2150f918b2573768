"""Model files that claim more than they hold (issue 23 item 13): the sizes the meta
declares are compared with the stored arrays' .npy headers before the model or any buffer is
built, only the entries a model needs are read, and no entry is decompressed beyond what a
file of its size can hold: a crafted 10 KB file or a zip bomb fails fast, in little memory."""
import json
import os
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import io

#: Peak Python-tracked memory (numpy's buffers included) a refused file may cost.
SMALL = 8 << 20


@pytest.fixture
def saved(tmp_path):
    model = fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0)
    model.fit(np.random.default_rng(0).normal(size=(30, 3)), np.arange(30) % 3, epochs=1,
              progress=False)
    return tmp_path / os.path.basename(model.save(tmp_path / "m.npz"))


def _refused_fast(path, match):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match):
            fastmlp.MLP.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < SMALL, f"refusing the file cost {peak:,} bytes"


def _with_meta(saved, **changes):
    """The saved file with its meta changed and its arrays kept as they are."""
    with zipfile.ZipFile(saved) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(str(np.load(saved)["meta"]))
    meta.update(changes)
    out = saved.with_name("crafted.npz")
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            if name == "meta.npy":
                with archive.open(name, "w") as f:
                    np.lib.format.write_array(f, np.array(json.dumps(meta)))
            else:
                archive.writestr(name, data)
    return out


def test_a_small_file_declaring_huge_layers_fails_before_allocating(saved):
    crafted = _with_meta(saved, n_inputs=2048, layers=[[2048, "relu"], [3, "softmax"]])
    assert crafted.stat().st_size < 10_000
    _refused_fast(crafted, "array 'params' does not match the model it describes")


def test_layers_beyond_memory_are_refused_not_a_memory_error(saved):
    crafted = _with_meta(saved, n_inputs=10**9, layers=[[10**9, "relu"], [3, "softmax"]])
    _refused_fast(crafted, "does not match the model it describes")


def _add_entry(path, name, shape, dtype=np.float64, compress=True):
    """Append an entry of `shape` zeros, deflated (a bomb: ~1000 times smaller on disk)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": shape}
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "a", compression=method) as archive:
        with archive.open(name, "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            chunk = bytes(1 << 20)
            left = int(np.prod(shape)) * np.dtype(dtype).itemsize
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)


def test_an_unknown_zip_bomb_entry_is_never_decompressed(saved):
    _add_entry(saved, "junk.npy", (40 << 20,))  # 320 MB of zeros in ~300 KB
    assert saved.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        model = fastmlp.MLP.load(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.layers == [(4, "relu"), (3, "softmax")]
    assert peak < SMALL, f"loading cost {peak:,} bytes"


def test_a_known_entry_claiming_more_than_the_file_holds_is_refused(saved):
    meta, arrays = io.read(saved)
    meta.pop("format"), meta.pop("version")
    arrays.pop("perm")
    io.write(saved, meta, arrays)
    _add_entry(saved, "perm.npy", (40 << 20,), np.int64)  # a perm bomb: 320 MB of zeros
    _refused_fast(saved, "more than a file of its size can hold")


def test_a_header_lying_about_its_data_is_an_error_naming_the_file(saved):
    meta, arrays = io.read(saved)
    meta.pop("format"), meta.pop("version")
    arrays.pop("perm")
    io.write(saved, meta, arrays)
    with zipfile.ZipFile(saved, "a") as archive:  # a header for 1000 rows, data for 3
        with archive.open("perm.npy", "w") as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": "<i8", "fortran_order": False, "shape": (1000,)})
            f.write(np.arange(3, dtype=np.int64).tobytes())
    _refused_fast(saved, "not a readable fastmlp model file")


def test_one_label_for_a_sigmoid_output_is_refused(tmp_path):
    """A single sigmoid output's 0 and 1 need two labels: a file listing one made predict
    index past its end (found by the nightly fuzz of tests/test_fuzz_cli.py)."""
    model = fastmlp.MLP(2, [(1, "sigmoid")], seed=0)
    X = np.random.default_rng(0).normal(size=(8, 2))
    model.fit(X, np.array(["no", "yes"] * 4), epochs=1, progress=False)
    saved = tmp_path / os.path.basename(model.save(tmp_path / "m.npz"))
    with pytest.raises(ValueError, match="1 classes but its output layer has 1"):
        fastmlp.MLP.load(_with_meta(saved, classes=["no"]))
    assert list(fastmlp.MLP.load(saved).classes_) == ["no", "yes"]
