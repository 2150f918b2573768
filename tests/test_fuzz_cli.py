"""Fuzzing the command line (issue 23, must-show 2): `fastmlp` (cli.main) on random argv over
random small files (tables, IDX sets, model files and the .json beside them), and on random
mutations of saved model files (meta values, array headers, bytes). Whatever it is given:

- it ends with a status of 0, 1, 2 or 130 (argparse's own SystemExit: 0 or 2), never an
  exception, and its error is one line on stderr, never a traceback (argparse's usage line
  before its error line is the one exception);
- an output it was asked to write (--save, --out) is left as it was when it fails;
- its peak memory (tracemalloc: Python's and numpy's allocations) stays within
  MEMORY_FACTOR times the bytes of its input files plus MEMORY_BASE (a model and a table's
  fixed costs), whatever sizes the files claim; an example that compiled a kernel (numba's
  compile events) or imported a module on first use (tens of MB once per process) is
  exempt, and counted as such in the report.

Profiles (FASTMLP_FUZZ): "ci" (the default) runs 2,000 examples per entry point,
derandomised, so a run is the same on every machine; "nightly" 50,000, seeded by the date;
"dev" 100.
"""
import contextlib
import datetime
import functools
import gzip
import io
import json
import os
import struct
import sys
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st
from numba.core.event import install_recorder

import fastmlp
from fastmlp.cli import main

EXAMPLES = {"ci": 2000, "nightly": 50000, "dev": 100}
PROFILE = os.environ.get("FASTMLP_FUZZ", "ci")
FUZZ = settings(max_examples=EXAMPLES[PROFILE], derandomize=PROFILE != "nightly",
                database=None, deadline=None, print_blob=False,
                suppress_health_check=list(HealthCheck))


def fuzz(test):
    """FUZZ's settings; nightly, another part of the space each night, seeded by the date
    (printed by hypothesis on a failure, so the night's run can be repeated)."""
    if PROFILE == "nightly":
        test = seed(int(datetime.date.today().strftime("%Y%m%d")))(test)
    return FUZZ(test)


MEMORY_FACTOR = 16
MEMORY_BASE = 24 << 20
STATUSES = {0, 1, 2, 130}

CELLS = ["0", "1", "2", "-2.5", "3e38", "1e39", "nan", "", "inf", "abc", "001", "01", "True"]
NAMES = ["a", "b", "c", "label", "y"]


class Saved(list):
    """The saved files' bytes, shown by name in a failure report (not byte by byte)."""

    def __repr__(self):
        return f"<{len(self)} saved model files>"


@pytest.fixture(scope="module")
def models():
    """Three saved models (a text-label classifier with feature names, a regressor, a
    sigmoid classifier) and their run summaries: what the files are mutated from."""
    root = tempfile.mkdtemp(prefix="fastmlp-fuzz-models-")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2))
    paths = []
    for i, (layers, y) in enumerate([
            ([(3, "relu"), (2, "softmax")], np.array(["no", "yes"] * 6)),
            ([(3, "tanh"), (1, "identity")], X[:, 0]),
            ([(1, "sigmoid")], (X[:, 1] > 0).astype(int))]):
        model = fastmlp.MLP(2, layers, seed=i)
        import pandas as pd
        model.fit(pd.DataFrame(X, columns=["a", "b"]), y, epochs=1, progress=False)
        path = model.save(os.path.join(root, f"m{i}.npz"))
        with open(path + ".json", "w") as f:
            json.dump({"format": "fastmlp-cli", "version": 1,
                       "summary": {"data": "t.csv", "epochs": 1, "batch_size": 4}}, f)
        with open(path, "rb") as f:
            paths.append(f.read())
    return Saved(paths)


# -- files ---------------------------------------------------------------------------------

@st.composite
def csv_text(draw):
    columns = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(st.sampled_from(CELLS), min_size=len(columns),
                                  max_size=len(columns)), max_size=6))
    return "\n".join([",".join(columns)] + [",".join(r) for r in rows]) + "\n"


@st.composite
def npy_bytes(draw):
    dtype = draw(st.sampled_from(["<f8", "<f4", "<i8", "|b1", "<U3", "<c8"]))
    shape = draw(st.tuples(st.integers(0, 6), st.integers(0, 4)) | st.tuples(
        st.integers(0, 6)))
    data = np.frombuffer(draw(st.binary(min_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                                        max_size=int(np.prod(shape)) * np.dtype(dtype).itemsize)),
                         dtype=np.uint8)
    arr = data.view(dtype).reshape(shape) if data.size else np.zeros(shape, dtype)
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    raw = out.getvalue()
    if draw(st.booleans()):  # a header kept, its data cut or extended
        raw = raw[:draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=16))
    return raw


@st.composite
def idx_bytes(draw, images):
    """An IDX file: a magic (right or not), dimensions (small or huge claims), a payload."""
    ndim = 3 if images else 1
    magic = draw(st.sampled_from([bytes([0, 0, 8, ndim]), bytes([0, 0, 8, 3 - ndim + 1]),
                                  bytes([0, 0, 13, ndim]), b"\x1f\x8b\x08\x00"]))
    dims = draw(st.lists(st.sampled_from([0, 1, 2, 3, 28, 60000, 2**31 - 1]),
                         min_size=ndim, max_size=ndim))
    payload = draw(st.binary(max_size=64))
    raw = magic + b"".join(struct.pack(">I", d) for d in dims) + payload
    return gzip.compress(raw) if draw(st.booleans()) else raw


@st.composite
def model_mutation(draw, saved):
    """The bytes of a saved model with one thing changed: a meta value, an array's .npy
    header (shape or dtype), an added entry (possibly a bomb), a flipped byte, or a cut."""
    raw = saved[draw(st.integers(0, len(saved) - 1))]
    kind = draw(st.sampled_from(["meta", "header", "entry", "flip", "cut", "none"]))
    if kind == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        return raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1:]
    if kind == "cut":
        return raw[:draw(st.integers(0, len(raw)))]
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    if kind == "meta":
        meta = json.loads(str(np.load(io.BytesIO(entries["meta.npy"]))))
        key = draw(st.sampled_from(sorted(meta) + ["classes", "feature_names"]))
        meta[key] = draw(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                         | st.sampled_from([0, 1, 2, 10**9, 10**18, -1, 1.5, "x", "relu"])
                         | st.lists(st.sampled_from([[2, "relu"], [10**9, "softmax"], 3, "a",
                                                     [1, "sigmoid"], None]), max_size=3))
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.array(json.dumps(meta)))
        entries["meta.npy"] = buffer.getvalue()
    elif kind == "header":
        name = draw(st.sampled_from(sorted(n for n in entries if n != "meta.npy")))
        arr = np.load(io.BytesIO(entries[name]))
        header = {"descr": draw(st.sampled_from([arr.dtype.str, "<f8", "<f4", "<i8", "|u1",
                                                 "<U2"])),
                  "fortran_order": draw(st.booleans()),
                  "shape": draw(st.sampled_from([arr.shape, (), (0,), (2**40,), (3, 2**33),
                                                 (arr.size + 1,)]))}
        buffer = io.BytesIO()
        np.lib.format.write_array_header_2_0(buffer, header)
        entries[name] = buffer.getvalue() + arr.tobytes()
    elif kind == "entry":
        return _with_bomb(raw, draw(st.sampled_from(["junk.npy", "perm.npy", "params.npy"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


@functools.lru_cache(maxsize=None)
def _with_bomb(raw, name):
    """raw's model file with entry `name` replaced by 32 MB of zeros deflated to ~32 KB."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        entries = {n: archive.read(n) for n in archive.namelist() if n != name}
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (1 << 22,)})
    entries[name] = header.getvalue() + bytes(8 << 22)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return out.getvalue()


# -- running the CLI -----------------------------------------------------------------------

SENTINEL = b"a file the user had before; a failed command must leave it\n"


def _run(argv, files, outputs):
    """main(argv) with the files written first; checks the invariants. Returns the status."""
    for path, data in files.items():
        with open(path, "wb") as f:
            f.write(data)
    for path in outputs:
        with open(path, "wb") as f:
            f.write(SENTINEL)
    size = sum(len(d) for d in files.values())
    out, err = io.StringIO(), io.StringIO()
    modules = len(sys.modules)
    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                install_recorder("numba:compile") as compiles:
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse's own errors and --help
                status = exc.code
                assert status in (0, 2), (argv, status)
                lines = err.getvalue().strip().splitlines()
                assert status == 0 or (len(lines) <= 2 and "error:" in lines[-1]), lines
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = err.getvalue()
    assert status in STATUSES, (argv, status, message)
    assert "Traceback" not in message, message
    problems = [line for line in message.splitlines() if "error:" in line]
    assert len(problems) <= 1, message
    if status != 0:
        for path in outputs:
            with open(path, "rb") as f:
                assert f.read() == SENTINEL, (argv, message, path)
            assert not os.path.exists(path + ".json") or path.endswith(".json"), path
    # Compiling a kernel (a new architecture's generated one, a first validation pass) or
    # importing a module on first use (scikit-learn's model_selection for a split) costs
    # tens of MB once per process, whatever the files: not the input's doing.
    compiled = bool(compiles.buffer) or len(sys.modules) != modules
    assert compiled or peak <= MEMORY_FACTOR * size + MEMORY_BASE, (argv, size, peak)
    _tally(argv, status, size, None if compiled else peak)
    return status


#: What a run saw, for its report: examples per command and status, and the largest peak
#: memory in bytes and as a multiple of the input files' bytes (FASTMLP_FUZZ_REPORT=FILE
#: writes it as JSON at the end of the module).
STATS = {"examples": {}, "max_peak": 0, "max_peak_over_size": 0.0, "largest_input": 0,
         "compiled_or_imported": 0}


def _tally(argv, status, size, peak):
    """Count the example; its peak memory (None: it compiled a kernel, not counted)."""
    key = f"{argv[0] if argv else '(none)'} -> {status}"
    STATS["examples"][key] = STATS["examples"].get(key, 0) + 1
    STATS["largest_input"] = max(STATS["largest_input"], size)
    if peak is None:
        STATS["compiled_or_imported"] += 1
        return
    STATS["max_peak"] = max(STATS["max_peak"], peak)
    if size:
        STATS["max_peak_over_size"] = max(STATS["max_peak_over_size"], peak / size)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    path = os.environ.get("FASTMLP_FUZZ_REPORT")  # "{worker}" in it: one file per xdist worker
    if path:
        path = path.replace("{worker}", os.environ.get("PYTEST_XDIST_WORKER", "main"))
        with open(path, "w") as f:
            json.dump({"profile": PROFILE, **STATS}, f, indent=1, sort_keys=True)


@pytest.fixture(scope="module")
def root():
    """A directory for each example's files, and main with its parser built once (argparse
    takes ~10 ms to build it, which every example would pay; a parser is reusable)."""
    import fastmlp.cli as cli
    build = cli.build_parser
    parser = build()
    cli.build_parser = lambda: parser
    yield tempfile.mkdtemp(prefix="fastmlp-fuzz-")
    cli.build_parser = build


def _clean(directory):
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            for inner in os.listdir(path):
                os.unlink(os.path.join(path, inner))
        else:
            os.unlink(path)


@fuzz
@given(data=st.data())
def test_fuzz_commands_on_random_files(models, root, data):
    _clean(root)
    draw = data.draw
    model = os.path.join(root, "m.npz")
    table = os.path.join(root, draw(st.sampled_from(["t.csv", "t.npy"])))
    files = {model: draw(model_mutation(models) | st.sampled_from(models)),
             table: (draw(csv_text()).encode() if table.endswith(".csv")
                     else draw(npy_bytes()))}
    if draw(st.booleans()):
        files[model + ".json"] = draw(st.sampled_from([
            b"{}", b"[]", b"nul", b'{"format": "fastmlp-cli", "summary": []}',
            b'{"format": "fastmlp-cli", "summary": {"batch_size": -3, "epochs": "x"}}',
            b'{"format": "fastmlp-cli", "summary": {"batch_size": 1e300, "held_out": 1}}']))
    idx = os.path.join(root, "idx")
    os.makedirs(idx, exist_ok=True)
    for name, images in (("t10k-images-idx3-ubyte", True), ("t10k-labels-idx1-ubyte", False)):
        if draw(st.booleans()):
            files[os.path.join(idx, name)] = draw(idx_bytes(images))
    target = draw(st.none() | st.sampled_from(NAMES + ["-1", "0", "7"]))
    command = draw(st.sampled_from(["train", "predict", "evaluate", "info"]))
    outputs = []
    if command == "train":
        saved = os.path.join(root, "new.npz")
        argv = ["train", "--quiet", "--epochs", draw(st.sampled_from(["0", "1", "2", "-1"])),
                "--save", saved]
        outputs.append(saved)
        if draw(st.booleans()):
            argv += ["--data", table] + ([] if target is None else ["--target", target])
        else:
            argv += ["--dataset", draw(st.sampled_from(["xor", "mnist"])), "--data-dir", idx,
                     "--test-split", "0.5"]
        argv += draw(st.sampled_from([[], ["--task", "classify"], ["--task", "regress"],
                                      ["--test", table], ["--layers", "3:relu,2:softmax"],
                                      ["--early-stopping"], ["--batch-size", "0"]]))
    elif command == "predict":
        out = os.path.join(root, draw(st.sampled_from(["p.csv", "p.npy", "p.txt"])))
        argv = ["predict", model, table, "--out", out] + (
            [] if target is None else ["--target", target]) + draw(
            st.sampled_from([[], ["--proba"], ["--json"]]))
        outputs.append(out)
    elif command == "evaluate":
        argv = ["evaluate", model] + draw(st.sampled_from([
            [table] + ([] if target is None else ["--target", target]),
            ["--dataset", "mnist", "--data-dir", idx], [table, "--json"]]))
    elif command == "info":
        argv = ["info", model] + draw(st.sampled_from([[], ["--json"], ["--batch-size", "7"]]))
    _run(argv, files, outputs)


@fuzz
@given(data=st.data())
def test_fuzz_mutated_model_files(models, root, data):
    _clean(root)
    draw = data.draw
    model = os.path.join(root, "m.npz")
    files = {model: draw(model_mutation(models)),
             os.path.join(root, "t.csv"): b"a,b\n1,2\n-1,0.5\n"}
    command = draw(st.sampled_from(["info", "predict", "evaluate"]))
    outputs = []
    if command == "info":
        argv = ["info", model, "--json"]
    elif command == "predict":
        out = os.path.join(root, "p.csv")
        argv, outputs = ["predict", model, os.path.join(root, "t.csv"), "--out", out], [out]
    else:
        files[os.path.join(root, "t.csv")] = b"a,b,y\n1,2,yes\n-1,0.5,no\n"
        argv = ["evaluate", model, os.path.join(root, "t.csv"), "--target", "y"]
    status = _run(argv, files, outputs)
    if status == 0:  # a file the CLI took is one load takes too, and the other way round
        fastmlp.MLP.load(model)
