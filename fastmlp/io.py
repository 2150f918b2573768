"""save/load: a .npz (no pickle) holding format version, spec, dtype, weights, optimizer state.

Writes go to a temporary file in the target's directory, are flushed to disk, then renamed
over the target, so an interrupted save never leaves a half-written model behind.
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


def save(model, path):
    path = _npz_path(path)
    ws = model._ws
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "n_inputs": model.spec.n_inputs, "layers": model.spec.as_list(),
        "loss": model.loss_name, "optimizer": model.optimizer.config(), "l2": model.l2,
        "init": model.init, "dtype": model.dtype.name, "seed": model.seed,
    }
    arrays = {"meta": np.array(json.dumps(meta)), "params": ws.params,
              "moment1": ws.moment1, "moment2": ws.moment2, "opt_step": ws.opt_step,
              "rng": ws.rng}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path):
    from .model import MLP
    from .optimizers import from_config

    given = os.fspath(path)
    path = given if os.path.exists(given) else _npz_path(given)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no fastmlp model file at {given!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeError) as exc:
        raise ValueError(f"{path!r} is not a readable fastmlp model file (corrupt or "
                         f"truncated?): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is a .npz file but not a fastmlp model")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has fastmlp format version {meta.get('version')}; this "
                         f"fastmlp reads version {FORMAT_VERSION}")
    try:
        model = MLP(meta["n_inputs"], [tuple(layer) for layer in meta["layers"]],
                    loss=meta["loss"], optimizer=from_config(meta["optimizer"]),
                    l2=meta["l2"], init=meta["init"], dtype=meta["dtype"], seed=meta["seed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path!r} holds an invalid model description: {exc}") from None
    ws = model._ws
    for name, buf in (("params", ws.params), ("moment1", ws.moment1),
                      ("moment2", ws.moment2), ("opt_step", ws.opt_step), ("rng", ws.rng)):
        arr = arrays.get(name)
        if arr is None or arr.shape != buf.shape or arr.dtype != buf.dtype:
            got = "missing" if arr is None else f"{arr.dtype}{list(arr.shape)}"
            raise ValueError(f"{path!r}: array {name!r} does not match the model it "
                             f"describes (expected {buf.dtype}{list(buf.shape)}, got {got})")
        buf[:] = arr
    if not np.isfinite(ws.params).all():
        raise ValueError(f"{path!r}: the stored weights contain NaN or infinite values")
    return model
