"""The model file format: a .npz (a zip of .npy arrays, never a pickle) holding a JSON "meta"
entry and named arrays. write() and read() know nothing about models.

Writes are atomic: files.atomic_write writes a temporary file beside the target and renames
it over the target, so a reader sees the old complete file or the new one, never a mixture.

Versions: every file records FORMAT_VERSION. read() accepts any version from 1 up to its own
and ignores meta keys and arrays it does not know, so optional additions need no new version;
a change an older reader would misread must raise FORMAT_VERSION.
"""
import errno
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from .files import atomic_write

FORMAT = "fastmlp-mlp"
FORMAT_VERSION = 1

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip
_NPY_MAGIC = b"\x93NUMPY"


# -- paths -----------------------------------------------------------------------------------

def _fspath(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__} "
                        f"{path!r}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError("path is empty; give a file name such as 'model.npz'")
    if "\0" in path:
        raise ValueError(f"path {path!r} contains a NUL character, which no file name can hold")
    return path


def _npz_path(path):
    return path if path.endswith(".npz") else path + ".npz"


def _refuse_directory(path, given):
    if given.endswith(tuple(s for s in (os.sep, os.altsep) if s)) or os.path.isdir(path):
        raise ValueError(f"path {given!r} names a directory, not a model file; give a file "
                         f"name such as {os.path.join(given, 'model.npz')!r}")


# -- writing ---------------------------------------------------------------------------------

def _target(path):
    """(file to write, the directory it lands in) for path, or the error a write to it would
    meet. A symbolic link is written through and kept (files.atomic_write): the directory is
    its target's."""
    given = _fspath(path)
    _refuse_directory(given, given)
    path = _npz_path(given)
    _refuse_directory(path, given)
    directory = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise ValueError(f"cannot save {given!r}: {directory!r} is not a directory")
        raise FileNotFoundError(errno.ENOENT, f"cannot save {given!r}: directory "
                                f"{directory!r} does not exist; create it first", given)
    return path, directory


def check_writable(path):
    """The path write() would write for path, once a file could be created there: lets a
    long job (the CLI's training) refuse a bad output path before it starts. Raises what
    write() would (ValueError, FileNotFoundError, PermissionError...); leaves nothing."""
    path, directory = _target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _write_error(exc, path, directory) from exc
    return path


def write(path, meta, arrays):
    """Write meta (a JSON-serialisable dict) and arrays (name -> array) to path atomically;
    '.npz' is appended when path lacks it (as numpy does); a symbolic link is written
    through and kept. Returns path ('.npz' appended)."""
    path, directory = _target(path)
    entries = {"meta": np.array(_meta_text(meta)), **_checked_arrays(arrays)}
    try:
        atomic_write(path, lambda f: np.savez(f, **entries))
    except OSError as exc:
        raise _write_error(exc, path, directory) from exc
    return path  # a link's name, not its target's: what sits beside it (a summary) is found


def _meta_text(meta):
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict; got {type(meta).__name__}")
    clash = {"format", "version"} & set(meta)
    if clash:
        raise ValueError(f"meta keys {sorted(clash)} are written by fastmlp.io itself")
    try:
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **meta},
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must hold only JSON values (str, finite numbers, bool, None, "
                        f"lists, dicts): {exc}") from None


def _checked_arrays(arrays):
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of name -> array; got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name == "meta":
            raise ValueError(f"array name {name!r} is not allowed (a non-empty str other "
                             f"than 'meta')")
        arr = np.asarray(value)
        if arr.dtype.hasobject:  # would need pickle, which read() refuses to run
            raise TypeError(f"array {name!r} has dtype object; store numbers or fixed-width "
                            f"strings (e.g. arr.astype(str))")
        out[name] = arr
    return out


def _write_error(exc, path, directory):
    """The same kind of OSError, saying what failed and that the old file is intact."""
    kept = "the previous file, if any, is unchanged"
    if exc.errno == errno.ENAMETOOLONG:  # the argument is at fault, not the system
        return ValueError(f"cannot save {path!r}: the file name is too long for the file "
                          f"system; {kept}")
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        message = (f"cannot save {path!r}: no space left on the device (or disk quota "
                   f"exceeded); {kept}. Free some space or save elsewhere")
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        message = (f"cannot save {path!r}: directory {directory!r} is read-only or not "
                   f"writable by this user; {kept}. Save elsewhere")
    else:
        message = f"cannot save {path!r}: {exc.strerror or exc}; {kept}"
    if exc.errno is None:
        return type(exc)(message)
    return OSError(exc.errno, message)  # OSError(errno, ...) picks the matching subclass


# -- reading ---------------------------------------------------------------------------------

def resolve(path):
    """The file read() reads for path: path itself if it exists, else path + '.npz'."""
    given = _fspath(path)
    _refuse_directory(given, given)
    path = given if os.path.exists(given) else _npz_path(given)
    _refuse_directory(path, given)
    return path


#: The arrays of a file (their headers' sizes, before any is read) may hold at most this many
#: times the file's bytes, plus READ_SLACK: MLP.save stores them uncompressed, so a file that
#: claims more is a crafted zip (a bomb) or a lie, refused before anything is decompressed.
READ_RATIO = 4
READ_SLACK = 1 << 20


def read(path, expect=None):
    """(meta, arrays) from a file written by write(); FileNotFoundError if there is none,
    ValueError naming the file if it is not a readable fastmlp file.

    Every array's .npy header is read before its data and its size checked against the
    file's; expect (meta -> {name: (shape, dtype)}, a shape of None: not compared) makes
    read() compare the headers with what the meta promises before reading any data, and
    read only the entries it names (others, however large, are never decompressed)."""
    given = _fspath(path)
    path = resolve(given)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no fastmlp model file at {given!r}", given)
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
        if magic.startswith(_NPY_MAGIC):
            raise ValueError(f"{path!r} is a single-array .npy file, not a readable "
                             f"fastmlp model file (a .npz written by MLP.save)")
        if not magic.startswith(_ZIP_MAGIC):
            raise ValueError(f"{path!r} is not a readable fastmlp model file (not a .npz "
                             f"archive)")
        f.seek(0)
        budget = READ_RATIO * os.fstat(f.fileno()).st_size + READ_SLACK
        try:
            with zipfile.ZipFile(f) as archive:
                members = {name[:-4]: name for name in archive.namelist()
                           if name.endswith(".npy")}
                meta = _parse_meta(_member(archive, members, "meta", path, budget), path)
                wanted = expect(meta) if expect is not None else None
                names = [n for n in members if n != "meta" and (wanted is None or n in wanted)]
                headers = {n: _header(archive, members[n], path) for n in names}
                if wanted is not None:
                    _compare(path, headers, wanted)
                total = sum(_nbytes(*h) for h in headers.values())
                if total > budget:
                    raise ValueError(f"{path!r}: its arrays claim {total:,} bytes, more than "
                                     f"a file of its size can hold uncompressed; the file is "
                                     f"corrupt or crafted")
                arrays = {n: _member(archive, members, n, path, budget) for n in names}
        except ValueError as exc:
            if str(exc).startswith(repr(path)):
                raise
            if str(exc).startswith("invalid model description"):
                raise ValueError(f"{path!r} holds an {exc}") from None
            raise _unreadable(path, exc) from None
        except Exception as exc:  # zipfile, zlib and numpy raise a dozen kinds on a bad file
            raise _unreadable(path, exc) from None
    return meta, arrays


def _header(archive, member, path):
    """(shape, dtype) from the .npy header of a zip member, reading nothing more."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    if dtype.hasobject:
        raise ValueError(f"{path!r}: array {member[:-4]!r} holds Python objects, which a "
                         f"model file never does")
    return shape, dtype


def _nbytes(shape, dtype):
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def _member(archive, members, name, path, budget):
    """One array, its header checked against the budget before its data is read."""
    if name not in members:
        return None
    shape, dtype = _header(archive, members[name], path)
    if _nbytes(shape, dtype) > budget:
        raise ValueError(f"{path!r}: entry {name!r} claims {_nbytes(shape, dtype):,} bytes, "
                         f"more than a file of its size can hold; the file is corrupt or "
                         f"crafted")
    with archive.open(members[name]) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _compare(path, headers, wanted):
    """ValueError unless each wanted array's header has the shape and dtype the meta says."""
    for name, (shape, dtype) in wanted.items():
        got = headers.get(name)
        if shape is None:
            continue  # optional, any length (the row order of the last fit): check_arrays
        if got is None:
            raise ValueError(f"{path!r}: array {name!r} does not match the model it "
                             f"describes (expected {np.dtype(dtype)}{list(shape)}, got "
                             f"missing)")
        if got[1] != np.dtype(dtype) or tuple(got[0]) != tuple(shape):
            raise ValueError(f"{path!r}: array {name!r} does not match the model it "
                             f"describes (expected {np.dtype(dtype)}{list(shape)}, got "
                             f"{got[1]}{list(got[0])})")


def model_layout(meta):
    """The arrays a model file's meta promises (MLP.load's `expect`), from its sizes alone:
    nothing as large as the model is allocated."""
    from .core.spec import NetworkSpec
    from .core.workspace import state_layout
    from .inputs.validation import check_dtype
    try:
        spec = NetworkSpec(meta["n_inputs"], [tuple(layer) for layer in meta["layers"]])
        return state_layout(spec, check_dtype(meta["dtype"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid model description: {exc}") from None


def _unreadable(path, exc):
    return ValueError(f"{path!r} is not a readable fastmlp model file (corrupt or "
                      f"truncated?): {type(exc).__name__}: {exc}")


def _parse_meta(entry, path):
    if entry is None or entry.shape != () or entry.dtype.kind != "U":
        raise ValueError(f"{path!r} is a .npz file but not a readable fastmlp model file "
                         f"(it has no 'meta' entry)")
    try:
        meta = json.loads(str(entry))
    except ValueError as exc:
        raise ValueError(f"{path!r}: its 'meta' entry is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is a .npz file but not a fastmlp model")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path!r}: invalid fastmlp format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path!r} was written by a newer fastmlp (format version "
                         f"{version}); this fastmlp reads versions 1 to {FORMAT_VERSION}: "
                         f"upgrade fastmlp")
    return meta


def check_arrays(path, arrays, expected):
    """Each array named in `expected` is present in `arrays` with its shape and dtype, and
    holds what it must: finite weights and moments, Adam's second moment >= 0, a step count
    >= 0, a non-zero RNG state, and "perm" (when stored) a permutation of 0..len-1. A
    ValueError naming the file otherwise: a tampered file must not crash or mislead a fit."""
    for name, buf in expected.items():
        arr = arrays.get(name)
        if arr is None or arr.shape != buf.shape or arr.dtype != buf.dtype:
            got = "missing" if arr is None else f"{arr.dtype}{list(arr.shape)}"
            raise ValueError(f"{path!r}: array {name!r} does not match the model it "
                             f"describes (expected {buf.dtype}{list(buf.shape)}, got {got})")
    if "params" in arrays and not np.isfinite(arrays["params"]).all():
        raise ValueError(f"{path!r}: the stored weights contain NaN or infinite values")
    for name, what in (("moment1", "first"), ("moment2", "second")):
        if name in arrays and not np.isfinite(arrays[name]).all():
            raise ValueError(f"{path!r}: the optimizer's stored {what} moments contain NaN "
                             f"or infinite values")
    if "moment2" in arrays and (arrays["moment2"] < 0).any():
        raise ValueError(f"{path!r}: the optimizer's stored second moments are negative "
                         f"(squared gradients cannot be); the file is corrupt or was edited")
    if "opt_step" in arrays and (arrays["opt_step"] < 0).any():
        raise ValueError(f"{path!r}: the stored optimizer step count is negative")
    if "opt_step" in arrays and (arrays["opt_step"] > MAX_OPT_STEP).any():
        # the next step's count would overflow the kernels' int64 counters
        raise ValueError(f"{path!r}: the stored optimizer step count "
                         f"{int(arrays['opt_step'].max())} is beyond any training (at most "
                         f"2**62); the file is corrupt or was edited")
    if "rng" in arrays and (arrays["rng"] == 0).all():
        raise ValueError(f"{path!r}: the stored shuffling RNG state is zero, which no model "
                         f"has; the file is corrupt or was edited")
    if "perm" in arrays:
        _check_permutation(path, arrays["perm"])


#: The largest optimizer step count a model file may hold.
MAX_OPT_STEP = 2**62


def _check_permutation(path, perm):
    """perm (the row order of the last fit): a 1-D integer array holding 0..len-1 once."""
    if perm.ndim != 1 or perm.dtype.kind not in "iu":
        raise ValueError(f"{path!r}: array 'perm' must be a 1-D integer array; got "
                         f"{perm.dtype}{list(perm.shape)}")
    if len(perm) and (perm.min() < 0 or perm.max() >= len(perm)
                      or not np.array_equal(np.sort(perm), np.arange(len(perm)))):
        raise ValueError(f"{path!r}: array 'perm' is not a permutation of the rows 0.."
                         f"{len(perm) - 1} of the last fit; the file is corrupt or was edited")


def check_classes(path, classes, n_outputs):
    """The meta's "classes" (None, or one distinct label per output unit; 2 for a single
    sigmoid output, whose 0 and 1 they name): a ValueError naming the file otherwise."""
    if classes is None:
        return None
    if not isinstance(classes, list) or not all(
            isinstance(c, (str, int, float, bool)) for c in classes):
        raise ValueError(f"{path!r}: 'classes' must be a list of labels (strings or "
                         f"numbers); got {type(classes).__name__} {str(classes)[:60]}")
    odd = [c for c in classes if isinstance(c, float) and not math.isfinite(c)]
    if odd:  # fit refuses such labels, and the summary could not be written again
        raise ValueError(f"{path!r}: its 'classes' hold {odd[0]!r}, not a finite label; the "
                         f"file is corrupt or was edited")
    k = len(classes)
    if not (k == n_outputs if n_outputs > 1 else k == 2):
        raise ValueError(f"{path!r}: it lists {k} classes but its output layer has "
                         f"{n_outputs} unit(s); the file is corrupt or was edited")
    labels = _label_array(classes)
    if len(np.unique(labels)) != k:
        raise ValueError(f"{path!r}: its 'classes' list a label twice")
    return labels


def _label_array(classes):
    """The stored labels as the array fit had: integers as int64, or uint64 when one is
    above int64's range (np.asarray would make float64 of a mix, changing large labels)."""
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        for kind in (np.int64, np.uint64):
            info = np.iinfo(kind)
            if all(info.min <= c <= info.max for c in classes):
                return np.array(classes, dtype=kind)
        return np.array(classes, dtype=object)
    return np.asarray(classes)
