"""Paths and files for the save/load property tests (tests/test_properties.py)."""
import io
import os
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from tests.strategies import choice


def path_cases(root):
    """(path, problem) pairs for save: str, Path and bytes paths that work, and paths that
    must be refused (directories, missing or non-directory parents, wrong types, NUL
    characters, names too long)."""
    (root / "sub dir").mkdir(parents=True, exist_ok=True)
    (root / "a directory.npz").mkdir(exist_ok=True)
    (root / "plain file").write_text("not a directory")
    ok = [root / "m.npz", str(root / "m"), root / "sub dir" / "modèle ü.npz",
          os.fsencode(root / "bytes.npz"), str(root / "sub dir") + "/../dots.npz"]
    bad = [(str(root / "sub dir") + os.sep, "path"), (root / "sub dir", "path"),
           (root / "a directory.npz", "path"), (root / "missing" / "m.npz", "path"),
           (root / "plain file" / "m.npz", "path"), ("", "path"), (3, "path"), (None, "path"),
           (1.5, "path"), (["m.npz"], "path"), (str(root / "nul\0byte.npz"), "path"),
           (root / ("x" * 300 + ".npz"), "path")]
    return [(p, None) for p in ok] + bad


def path_problems(path, problem):
    """The argument is named by the word "path" or by its value."""
    problems = {"path": problem}
    if isinstance(path, (str, bytes, os.PathLike)) and os.fspath(path):
        problems[repr(os.fsdecode(path))[1:-1]] = problem
    return problems


def name_verdict(root, name):
    """(path, problem) for a file name drawn as text, in directory root."""
    path = os.path.join(str(root), name)
    target = path if path.endswith(".npz") else path + ".npz"
    if not name or "\0" in name or name.endswith(os.sep) or os.path.isdir(path) \
            or os.path.isdir(target):
        return path, "path"
    if not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        return path, "path"
    if len(os.fsencode(os.path.basename(target))) > 255:
        return path, "path"
    return path, None


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def file_cases(files):
    """(the bytes of each model file in files, {name: bytes} of spoiled model files)."""
    with np.load(files[0]) as z:
        arrays = {k: z[k] for k in z.files}
    meta = str(arrays["meta"])
    spoiled = {
        "npy": _npy_bytes(np.zeros(3)),
        "no meta": _npz_bytes(a=np.zeros(3)),
        "meta not json": _npz_bytes(**dict(arrays, meta=np.array("{not json"))),
        "meta a list": _npz_bytes(**dict(arrays, meta=np.array("[1, 2]"))),
        "meta numbers": _npz_bytes(**dict(arrays, meta=np.arange(3))),
        "newer": _npz_bytes(**dict(arrays, meta=np.array(meta.replace('"version": 1',
                                                                      '"version": 99')))),
        "no layers": _npz_bytes(**dict(arrays, meta=np.array(meta.replace('"layers"', '"x"')))),
        "short params": _npz_bytes(**dict(arrays, params=arrays["params"][:-1])),
        "nan params": _npz_bytes(**dict(arrays, params=arrays["params"] * np.nan)),
        "pickled": _npz_bytes(**dict(arrays, params=np.array([1, "a"], dtype=object))),
        "empty": b"",
        "text": b"fastmlp model\n",
    }
    return [Path(f).read_bytes() for f in files], spoiled


def _npy_bytes(arr):
    buffer = io.BytesIO()
    np.save(buffer, arr)
    return buffer.getvalue()


def file_content(draw, good, spoiled):
    """(bytes, damage): good itself (damage None), or damaged (truncated, a byte flipped),
    random bytes, or one of the spoiled files."""
    how = draw(choice(("good", "truncated", "flipped", "random", "spoiled")))
    if how == "good":
        return good, None
    if how == "truncated":
        return good[:draw(st.integers(0, len(good) - 1))], "truncated"
    if how == "flipped":
        at, bits = draw(st.integers(0, len(good) - 1)), draw(st.integers(1, 255))
        return good[:at] + bytes([good[at] ^ bits]) + good[at + 1:], "flipped"
    if how == "random":
        return draw(st.binary(max_size=64)), "random"
    name = draw(choice(tuple(sorted(spoiled))))
    return spoiled[name], name
