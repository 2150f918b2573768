"""Tabular files in, (X, y) out: CSV and Parquet through pandas, .npy and .npz through numpy.

What `target` means, by format:

- CSV (``.csv``, ``.tsv``, optionally ``.gz``/``.bz2``/``.xz``/``.zip`` compressed) and
  Parquet (``.parquet``, ``.pq``): the name of the target column (an int selects a column by
  position). Every other column is a feature and must be numeric.
- ``.npy``: one 2-D array; `target` is a column index (negative counts from the end). The
  array is memory-mapped, so with ``target=None`` X is read lazily from disk.
- ``.npz``: the features are the array named ``X`` (or the file's only array); `target` is
  the name of another array in the file holding the targets (``"y"`` by convention), or a
  column index into X.

``target=None`` returns ``(X, None)``: all columns are features (what ``predict`` reads).
y keeps the user's labels (strings, integers, floats) for the caller to encode. A CSV's
target column is read as text first and made numbers only when no value has a leading zero
("001" and "01" are two labels, not the number 1). ``names=True`` adds the feature columns'
names (a list of str; None for .npy and .npz) as a third item.
"""
import numbers
import os
import re
import tokenize
import zipfile

import numpy as np

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npy", ".npz")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")


def table_format(path):
    """'csv', 'tsv', 'parquet', 'npy' or 'npz' from the file name; ValueError otherwise."""
    name = os.fspath(path).lower()
    for suffix in COMPRESSIONS:
        if name.endswith(".csv" + suffix) or name.endswith(".tsv" + suffix):
            name = name[:-len(suffix)]
    for suffix, kind in ((".csv", "csv"), (".tsv", "tsv"), (".parquet", "parquet"),
                         (".pq", "parquet"), (".npy", "npy"), (".npz", "npz")):
        if name.endswith(suffix):
            return kind
    raise ValueError(f"cannot tell the format of {os.fspath(path)!r} from its name; use a "
                     f"file ending in .csv, .tsv, .parquet, .npy or .npz")


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("reading CSV and Parquet files needs pandas (and pyarrow for "
                          "Parquet): pip install 'fastmlp[data]'") from None
    return pandas


def load_table(path, target=None, *, names=False):
    """(X, y) from a CSV, Parquet, .npy or .npz file; see the module docstring for what
    `target` means in each. X is a 2-D numeric array, y a 1-D array of the user's labels
    (None when target is None); names=True: (X, y, feature names or None)."""
    X, y, columns = _load(path, target)
    return (X, y, columns) if names else (X, y)


class UnreadableTable(ValueError):
    """The file is not what its name says (a damaged .npy or .npz, a CSV that does not
    parse): nothing in it could be read, as against a table read whose content is unusable
    (a plain ValueError)."""


#: What np.load raises on a damaged file: empty or cut short (EOFError, ValueError), not a
#: .npy (ValueError), a file starting "PK" read as a damaged zip archive whatever its name
#: (BadZipFile), or a header numpy's fallback parser chokes on (SyntaxError, TokenError).
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, SyntaxError,
               tokenize.TokenError)


def _load(path, target):
    kind = table_format(path)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such data file: {path!r}")
    if target is not None and (isinstance(target, bool)
                               or not isinstance(target, (str, numbers.Integral))):
        raise TypeError(f"target must be a column name (str), a column index (int) or None; "
                        f"got {type(target).__name__} {target!r}")
    if kind == "npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except _UNREADABLE as exc:
            raise UnreadableTable(f"{path!r} is not a readable .npy file: {exc}") from None
        return (*_from_array(array, target, path), None)
    if kind == "npz":
        return (*_from_npz(path, target), None)
    return _from_frame(_read_frame(path, kind, target), target, path)


def _read_frame(path, kind, target):
    pandas = _pandas()
    try:
        if kind == "parquet":
            return pandas.read_parquet(path)
        sep = "\t" if kind == "tsv" else ","
        if target is None:
            return pandas.read_csv(path, sep=sep)
        if not isinstance(target, str):  # a position: the header says which column
            target = _column_name(pandas.read_csv(path, sep=sep, nrows=0).columns, target,
                                  path)
        frame = pandas.read_csv(path, sep=sep, dtype={target: str})
        if target in frame.columns:
            frame[target] = _labels_or_numbers(frame[target], pandas)
        return frame
    except ImportError as exc:
        raise ImportError(f"reading {path!r} needs {exc.name or 'pyarrow'}: "
                          f"pip install 'fastmlp[data]'") from None
    except (ValueError, OSError, UnicodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UnreadableTable(f"{path!r} could not be read as {kind}: {exc}") from None


#: Text a CSV's target holds that is a label, not a number: a leading zero ("007", "-01").
_LEADING_ZERO = re.compile(r"^\s*[+-]?0[0-9]")


def _labels_or_numbers(column, pandas):
    """A target column read as text: numbers (as pandas would infer them) unless a value
    has a leading zero, which only a label keeps; missing values stay missing."""
    present = column.dropna()
    if present.str.match(_LEADING_ZERO).any():
        return column
    lowered = present.str.strip().str.lower()
    if len(present) and lowered.isin(["true", "false"]).all():
        return column.str.strip().str.lower().map({"true": True, "false": False})
    try:
        return pandas.to_numeric(column)
    except (ValueError, TypeError):
        return column


def _column_name(columns, target, path):
    columns = list(columns)
    if isinstance(target, str):
        if target not in columns:
            shown = ", ".join(map(repr, columns[:20])) + (", ..." if len(columns) > 20 else "")
            raise ValueError(f"{path!r} has no column {target!r}; its columns are {shown}")
        return target
    if not -len(columns) <= target < len(columns):
        raise ValueError(f"column index {target} is out of range for {path!r}, which has "
                         f"{len(columns)} columns")
    return columns[target]


def _from_frame(frame, target, path):
    if frame.shape[0] == 0:
        raise ValueError(f"{path!r} has no data rows")
    y = None
    if target is not None:
        name = _column_name(frame.columns, target, path)
        column = frame[name]
        if column.isna().any():
            raise ValueError(f"target column {name!r} of {path!r} has "
                             f"{int(column.isna().sum())} missing value(s); drop those rows")
        y = column.to_numpy()
        frame = frame.drop(columns=[name])
    if frame.shape[1] == 0:
        raise ValueError(f"{path!r} has no feature columns besides the target")
    numeric = frame.select_dtypes(include=["number", "bool"])
    if numeric.shape[1] != frame.shape[1]:
        bad = [str(c) for c in frame.columns if c not in numeric.columns]
        raise ValueError(f"feature column(s) {', '.join(map(repr, bad[:10]))} of {path!r} "
                         f"are not numeric; encode them as numbers (e.g. pandas.get_dummies) "
                         f"or drop them")
    return frame.to_numpy(dtype=np.float64), y, [str(c) for c in frame.columns]


def _from_array(array, target, path):
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{path!r} holds a {array.dtype} array; expected numbers")
    if array.ndim != 2:
        raise ValueError(f"{path!r} holds a {array.ndim}-D array of shape {array.shape}; "
                         f"expected a 2-D (rows, columns) table")
    if target is None:
        return array, None
    if isinstance(target, str):
        raise ValueError(f"{path!r} is a plain array: give target as a column index (e.g. "
                         f"-1 for the last column), not a name")
    n = array.shape[1]
    if not -n <= target < n:
        raise ValueError(f"column index {target} is out of range for {path!r}, which has "
                         f"{n} columns")
    column = target % n
    return np.delete(array, column, axis=1), np.array(array[:, column])


def _from_npz(path, target):
    try:
        archive = np.load(path, allow_pickle=False)
    except _UNREADABLE as exc:
        raise UnreadableTable(f"{path!r} is not a readable .npz file: {exc}") from None
    with archive:
        names = list(archive.files)
        if "X" in names:
            features = "X"
        elif len(names) == 1:
            features = names[0]
        elif len(names) == 2 and isinstance(target, str) and target in names:
            features = next(n for n in names if n != target)
        else:
            raise ValueError(f"{path!r} holds arrays {names}; name the features 'X' (and "
                             f"the targets e.g. 'y')")
        if isinstance(target, str):
            if target not in names or target == features:
                raise ValueError(f"{path!r} has no target array {target!r}; its arrays are "
                                 f"{names}")
            X, y = archive[features], archive[target]
            if X.ndim != 2 or y.ndim != 1 or len(y) != len(X):
                raise ValueError(f"{path!r}: expected {features!r} as (rows, features) and "
                                 f"{target!r} as (rows,); got shapes {X.shape} and {y.shape}")
            return _from_array(X, None, path)[0], y
        return _from_array(archive[features], target, path)
