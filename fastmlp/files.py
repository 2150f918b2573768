"""Files fastmlp writes: where its caches live, and how a file is written whole or not at all.

One cache root serves every cache (generated kernels, downloaded datasets), so one setting
moves them all.
"""
import os
import tempfile


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


def atomic_write(path, write, text=False):
    """Call write(f) on a temporary file beside path, flush it to disk, then rename it over
    path; on any failure (Ctrl-C included) the temporary file is removed and path is left as
    it was. The file gets the permissions open() would give it (0666 less the umask), not
    mkstemp's 0600. Returns path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastmlp-", suffix=".tmp", dir=directory)
    try:
        with (os.fdopen(fd, "w", newline="") if text else os.fdopen(fd, "wb")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
