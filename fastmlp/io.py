"""The model file format: a .npz (no pickle) of a JSON description and named arrays.

This module reads and writes the format only; MLP.save and MLP.load (model.py) assemble the
model. Writes go to a temporary file in the target's directory, are flushed to disk, then
renamed over the target, so an interrupted save never leaves a half-written model behind.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastmlp-mlp"
FORMAT_VERSION = 1


def _npz_path(path):
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def write(path, meta, arrays):
    """Write meta (a JSON-able dict) and arrays (name -> ndarray) to path (".npz" added when
    missing), atomically; returns the path written."""
    path = _npz_path(path)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **meta}
    contents = {"meta": np.array(json.dumps(meta)), **arrays}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **contents)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read(path):
    """(meta, arrays, the path read) of a file written by `write`; ValueError naming the
    file if it is not a readable fastmlp model, FileNotFoundError if there is none."""
    given = os.fspath(path)
    path = given if os.path.exists(given) else _npz_path(given)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no fastmlp model file at {given!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeError) as exc:
        raise ValueError(f"{path!r} is not a readable fastmlp model file (corrupt or "
                         f"truncated?): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is a .npz file but not a fastmlp model")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has fastmlp format version {meta.get('version')}; this "
                         f"fastmlp reads version {FORMAT_VERSION}")
    return meta, arrays, path


def check_arrays(path, arrays, expected):
    """Each array named in `expected` is present in `arrays` with its shape and dtype, and
    stored weights are finite; a ValueError naming the file otherwise."""
    for name, buf in expected.items():
        arr = arrays.get(name)
        if arr is None or arr.shape != buf.shape or arr.dtype != buf.dtype:
            got = "missing" if arr is None else f"{arr.dtype}{list(arr.shape)}"
            raise ValueError(f"{path!r}: array {name!r} does not match the model it "
                             f"describes (expected {buf.dtype}{list(buf.shape)}, got {got})")
    if "params" in arrays and not np.isfinite(arrays["params"]).all():
        raise ValueError(f"{path!r}: the stored weights contain NaN or infinite values")
