"""What every subcommand shares: its two kinds of error, output as text or JSON, reading
models and tables, and checking before any work that an output path can be written."""
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading

import numpy as np

from ..files import atomic_write


class UsageError(Exception):
    """The command line asks for something impossible: exit status 2."""


class Failure(Exception):
    """The command line was fine but the work could not be done: exit status 1."""


class StoppedAtOnce(BaseException):
    """A second Ctrl-C: stop now, writing nothing more (fit does not catch it, as it catches
    the first one's KeyboardInterrupt)."""


def emit(args, text, record):
    """Print `record` as one JSON object with --json, else `text`. NaN and infinities become
    null: strict JSON has no token for them."""
    if getattr(args, "json", False) is True:
        print(json.dumps(_finite(record), allow_nan=False))
    else:
        print(text)


def _finite(value):
    """value with numpy values made Python ones and non-finite floats made None."""
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Interrupts:
    """Ctrl-C while training: the first raises KeyboardInterrupt, which fit turns into an
    early return (History.interrupted); a second one, even one pressed while compiled code
    kept the first waiting, raises StoppedAtOnce. The C-level handler writes a byte per
    signal to a wakeup pipe, which is how two presses are told from one."""

    def __enter__(self):
        self.count, self.previous = 0, None
        self.deferring = self.pending = False
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers belong to the main thread
        self.read_end, write_end = os.pipe()
        os.set_blocking(self.read_end, False)
        os.set_blocking(write_end, False)
        self.write_end = write_end
        self.previous = signal.signal(signal.SIGINT, self._handle)
        self.previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        return self

    def _handle(self, signum, frame):
        try:
            pressed = os.read(self.read_end, 4096).count(signal.SIGINT)
        except BlockingIOError:
            pressed = 0
        self.count += max(pressed, 1)
        if self.count > 1:
            raise StoppedAtOnce()
        if self.deferring:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """Within the block a first Ctrl-C is noted (`pending`), not raised, so that a save
        that has begun ends with the model on disk; a second still stops at once."""
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.set_wakeup_fd(self.previous_fd)
            signal.signal(signal.SIGINT, self.previous)
            os.close(self.read_end)
            os.close(self.write_end)
        return False


def check_not_an_input(outputs, option, inputs):
    """UsageError when a file the command will write (outputs) is one of the files it reads
    (inputs; names or links alike): writing it would replace the user's input."""
    for out in outputs:
        if out is None or not os.path.exists(out):
            continue
        for given in inputs:
            if given is not None and os.path.isfile(given) and os.path.samefile(out, given):
                raise UsageError(f"{option} {os.fspath(out)!r} is the input file "
                                 f"{os.fspath(given)!r}, which writing it would replace; give "
                                 f"another name (nothing was done)")


def check_writable(path, option):
    """UsageError unless a file can be created at path: its directory exists and accepts a
    new file (tried, since permission bits do not tell the whole story), and path is not a
    directory."""
    path = os.fspath(path)
    if path.endswith(os.sep) or os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory; give a file name, e.g. "
                         f"{os.path.join(path, 'model.npz')!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path!r}: directory {directory!r} does not exist; create "
                         f"it first (nothing was done)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fastmlp-probe-", dir=directory)
    except OSError as exc:
        raise UsageError(f"{option} {path!r}: cannot write in {directory!r} "
                         f"({exc.strerror or exc}); nothing was done") from None
    os.close(fd)
    os.unlink(probe)


def model_path(path):
    """The file MLP.load reads for path (path itself, else path + '.npz')."""
    from ..io import resolve
    return resolve(path)


def load_model(path):
    """MLP.load, with an unreadable file reported as a Failure naming it."""
    from ..model import MLP
    try:
        return MLP.load(path)
    except ValueError as exc:
        raise Failure(str(exc)) from None


def target_for(path, text):
    """--target as load_table wants it: a column index for .npy (and for .npz when it is a
    number), else the column or array name."""
    if text is None:
        return None
    from ..datasets.table import table_format
    kind = table_format(path)
    if kind in ("npy", "npz"):
        try:
            return int(text)
        except ValueError:
            if kind == "npy":
                raise UsageError(f"--target {text!r}: a .npy file has no column names; give "
                                 f"a column index such as -1") from None
    return text


def load_table(path, target_text):
    """(X, y, feature names or None) from a table file. What a table holds (no rows, a
    missing target value, a value that is not a number, no such --target) is a UsageError,
    exit status 2 as for a NaN feature found later; a file that cannot be read (missing,
    damaged, not in its format) is an OSError or a Failure, 1."""
    from ..datasets.table import UnreadableTable, load_table as load
    try:
        target = target_for(path, target_text)
        return load(path, target, names=True)
    except UnreadableTable as exc:
        raise Failure(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def by_name(X, names, trained, where):
    """X's columns in the order of `trained` (the model's feature names) when both have
    names: reordered by name, or a Failure naming missing and extra columns (see
    inputs/features.py for why another order is read, not refused)."""
    from ..inputs.features import column_order
    if names is None or trained is None:
        return X
    try:
        order = column_order(names, trained, where)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    return X if order is None else X[:, order]


def write_rows(path, values, header):
    """values (rows,) or (rows, k) to a .csv or .npy file, atomically; None: CSV on stdout."""
    if path is not None and os.fspath(path).lower().endswith(".npy"):
        atomic_write(path, lambda f: np.save(f, values, allow_pickle=False))
        return
    import csv
    rows = values.reshape(len(values), -1)

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        # str() of a numpy scalar is the shortest text that reads back as the same value in
        # its own dtype: 0.99913 for a float32, not the float64 expansion of it.
        writer.writerows([str(v) for v in row] for row in rows)

    if path is None:
        write(sys.stdout)
    else:
        atomic_write(path, write, text=True)
