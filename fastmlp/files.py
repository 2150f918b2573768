"""Files fastmlp writes: where its caches live, and how a file is written whole or not at all.

One cache root serves every cache (generated kernels, downloaded datasets), so one setting
moves them all. atomic_write is the package's one writer that renames a file into place:
the model file (io.py), the CLI's run summary, downloaded datasets and generated kernels all
go through it.

A write goes to a temporary file in the target's directory, named
``.fastmlp-<pid>-<token>.<host>.tmp``, which is flushed to disk (fsync), given the permissions
open() would give (an existing target's mode, else 0666 minus the umask), renamed over the
target (os.replace: atomic on POSIX and Windows), and then the directory itself is flushed so
the rename survives a power cut. A reader therefore sees the old complete file or the new
complete file, never a mixture. A process killed in the middle of a write leaves its
temporary file behind; the next write into that directory deletes temporary files whose
writer (same host, process id) no longer runs.
"""
import hashlib
import os
import re
import socket
import tempfile

_TEMP = re.compile(r"^\.fastmlp-(\d+)-[0-9a-z_]+\.(.+)\.(?:tmp|part)$")


def cache_root():
    """$FASTMLP_CACHE_DIR, else $XDG_CACHE_HOME/fastmlp, else ~/.cache/fastmlp.

    Each user of the cache takes a subdirectory: ``kernels`` for generated training kernels,
    ``datasets/<name>`` for downloaded data.
    """
    root = os.environ.get("FASTMLP_CACHE_DIR")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastmlp")


def umask():
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write, text=False, encoding=None, suffix=".tmp"):
    """Call write(f) on a temporary file beside path (text or binary), then move it over path
    as the module docstring says; on any failure (Ctrl-C included) the temporary file is
    removed and path is left as it was. suffix: the temporary file's (".part" for a
    download). A symbolic link is written through, as open() would, and kept. Returns path."""
    given = path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(directory)
    mode = os.stat(path).st_mode & 0o7777 if os.path.isfile(path) else 0o666 & ~umask()
    # mkstemp, not open(): O_EXCL on a name of its own, whatever else the directory holds
    fd, tmp = tempfile.mkstemp(prefix=f".fastmlp-{os.getpid()}-", suffix=f".{host()}{suffix}",
                               dir=directory)
    try:
        with (os.fdopen(fd, "w", newline="", encoding=encoding) if text
              else os.fdopen(fd, "wb")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp's 0600 would pass on to the file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
    return given


def digest(path, algorithm="sha256"):
    """The hex digest of a file's bytes, read a megabyte at a time."""
    hashed = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hashed.update(block)
    return hashed.hexdigest()


def host():
    """This host's name as it appears in temporary file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def remove_stale_temps(directory):
    """Delete temporary files left in directory by writers on this host that no longer run
    (killed in the middle of a write). POSIX only: there os.kill(pid, 0) only asks."""
    if os.name != "posix":
        return
    here = host()
    for name in os.listdir(directory):
        if not name.startswith(".fastmlp-"):  # the cheap test first: a write may go into a
            continue                          # directory of many thousand files
        match = _TEMP.match(name)
        if match is None or match.group(2) != here or _process_runs(int(match.group(1))):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass  # another writer removed it first, or it is not ours to remove


def _process_runs(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid: leave the file alone
    return True


def _fsync_directory(directory):
    """Flush the directory entry of the rename; not every OS or filesystem allows it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
