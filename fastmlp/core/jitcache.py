"""Numba's disk cache, made to notice edits in every module the kernels read.

Numba stamps a cached kernel with its own source file only: an edit to config.py (a BLAS
threshold, say), to a callee in another file or to a code in activations.py would leave the
stale machine code in use. `install` puts cache locators ahead of numba's own for the files of
this package; their stamp adds a digest of KERNEL_SOURCES, so an edit to any of those files
makes every fastmlp kernel compile afresh on its next call (numba then overwrites the stale
entries), and the BLAS library the kernels call (core/blas.stamp), so a kernel compiled to
call a library's symbol is never loaded where that library is not. Code outside the package
is left to numba's own locators. The generated kernels of cpu/codegen.py hash the same
digest into their file names (cpu/specialize.py).

`lock_files` makes a kernel's cache files safe for processes that compile at the same time
(cpu/ahead.py's helper and the fit beside it, test workers, a grid search's jobs). numba
names a new entry's data file after the first number free in the index as it read it, then
rewrites the index: two processes adding different signatures of one function at once can
both take `.1.nbc`, and the index left behind can send one signature to the other's machine
code. Under the lock, reading the index, choosing the name and writing both files is one
step; loads take the lock shared, so they never see an index ahead of its data.

`PackageFunctionCache` looks a package kernel up first among the kernels the package ships
(compiled when it was built: cpu/ship.py, core/shipped.py).

`LoadingFunctionCache` (every cache `lock_files` sees) reads machine code back without the
refresh of numba's target context that numba's `load_overload` does first: that installs
every registry of typings and lowerings, 0.4-0.6 s of a warm process's first fit here, which
only a compile uses (numba's compiler refreshes the context itself).
"""
import contextlib
import functools
import hashlib
import os
import pickle

from numba.core import caching
from numba.core.runtime import rtsys

from .. import files

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The files whose text any compiled kernel may depend on: the twins, and the modules above
#: them whose constants and functions they read.
KERNEL_SOURCES = ("config.py", "core", "cpu", "cuda")


def _files(package_dir):
    for name in KERNEL_SOURCES:
        path = os.path.join(package_dir, name)
        if os.path.isdir(path):
            yield from sorted(os.path.join(path, f) for f in os.listdir(path)
                              if f.endswith(".py"))
        else:
            yield path


@functools.lru_cache(maxsize=None)
def source_digest(package_dir=PACKAGE_DIR):
    """sha256 over the names and bytes of the kernel sources (read once per process)."""
    digest = hashlib.sha256()
    for path in _files(package_dir):
        digest.update(os.path.relpath(path, package_dir).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _file_digest(path):
    return files.digest(path)


def _in_package(py_file):
    return os.path.abspath(py_file).startswith(PACKAGE_DIR + os.sep)


def _package_locator(base):
    class PackageLocator(base):
        fastmlp_locator = True

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _in_package(py_file):
                return None
            locator = super().from_function(py_func, py_file)
            if locator is not None:
                heal(locator.get_cache_path())
            return locator

        def get_source_stamp(self):
            # What the file and the kernel sources say, not when they were written: an
            # install rewrites every file's time, and the shipped kernels must still match.
            from . import blas  # whether the kernels call BLAS by symbol (cpu/gemm.py)
            return _file_digest(self._py_file), source_digest(), blas.stamp()

    PackageLocator.__name__ = f"Fastmlp{base.__name__}"
    return PackageLocator


@functools.lru_cache(maxsize=None)
def heal(directory):
    """Delete the numba index files (*.nbi) in directory that cannot be read back (a disk
    that filled up, a killed writer): numba would raise UnpicklingError on every later run
    until the user deleted the cache; without the index it compiles afresh and writes a new
    one. An index of another numba version is left alone. Once per directory per process."""
    import numba
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".nbi")]
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                if pickle.load(f) != numba.__version__:
                    continue  # numba reads only its own version's index
                pickle.loads(f.read())
        except OSError:
            continue
        except Exception:  # unpickling a damaged stream raises many kinds
            try:
                os.unlink(path)
            except OSError:
                pass


LOCK_NAME = "fastmlp-cache.lock"


@contextlib.contextmanager
def _locked(directory, exclusive):
    """An advisory lock on directory's LOCK_NAME file (shared or exclusive) while the block
    runs; where the system has no such locks (or the directory is not writable), none."""
    try:
        import fcntl
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:  # a filesystem without locks (some network mounts)
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


class LockedIndexDataCacheFile(caching.IndexDataCacheFile):
    """numba's index and data files of one function, read and written under the cache
    directory's lock (the module's docstring says why)."""

    def save(self, key, data):
        with _locked(self._cache_path, exclusive=True):
            super().save(key, data)

    def load(self, key):
        with _locked(self._cache_path, exclusive=False):
            return super().load(key)


def lock_files(dispatcher):
    """dispatcher, its disk cache (if any) now read and written under the lock, and looked
    up first by `load_first` (the shipped kernels) when its function is the package's."""
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if type(cache_file) is caching.IndexDataCacheFile:
        cache_file.__class__ = LockedIndexDataCacheFile  # same state, locked methods
    if type(cache) is caching.FunctionCache:
        package = getattr(cache._impl.locator, "fastmlp_locator", False)
        cache.__class__ = PackageFunctionCache if package else LoadingFunctionCache
    return dispatcher


#: Looked up before numba's own cache for every package kernel: (cache, sig,
#: target_context) -> a compile result or None. config hands core/shipped.load_shipped (the
#: kernels the package ships) over through `install`, unless FASTMLP_SHIPPED_KERNELS=0.
load_first = None


class LoadingFunctionCache(caching.FunctionCache):
    """numba's cache of one function, read back without refreshing the target context."""

    def load_overload(self, sig, target_context):
        guard = getattr(self, "_guard_against_spurious_io_errors", None)
        if guard is None:  # a numba whose cache works differently: its own way
            return super().load_overload(sig, target_context)
        # Machine code read back needs numba's runtime (the NRT functions it links to);
        # a miss returns None and the compile that follows refreshes the context.
        rtsys.initialize(target_context)
        with guard():
            return self._load_overload(sig, target_context)
        return None  # the guard swallowed an I/O error: numba then compiles


class PackageFunctionCache(LoadingFunctionCache):
    """numba's cache of one package function, `load_first` asked first."""

    def _load_overload(self, sig, target_context):
        if self._enabled and load_first is not None:
            cres = load_first(self, sig, target_context)
            if cres is not None:
                return cres
        return super()._load_overload(sig, target_context)


def install(first=None):
    """Put the package's locators first in numba's list (once per process); `first`: the
    loader asked before numba's cache (`load_first`)."""
    global load_first
    load_first = first
    classes = caching.CacheImpl._locator_classes
    if any(getattr(c, "fastmlp_locator", False) for c in classes):
        return
    bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
             caching.UserWideCacheLocator)
    classes[:0] = [_package_locator(base) for base in bases]


# -- compiling ahead of a call ---------------------------------------------------------------

def _target(dispatcher, args):
    """(dispatcher, args) of the numba call behind a kernel: the kernel itself, or for an
    object that runs one (cpu/parallel's team kernels) what its jit_target names."""
    target = getattr(dispatcher, "jit_target", None)
    return (dispatcher, args) if target is None else target(args)


def _signature(dispatcher, args):
    """The argument types numba's dispatcher would compile `args` under, or None when
    dispatcher is not a numba dispatcher (tests stand Python functions in for kernels)."""
    if not hasattr(dispatcher, "overloads") or not hasattr(dispatcher, "compile"):
        return None
    import numba
    return tuple(numba.typeof(a) for a in args)


def is_compiled(dispatcher, *args):
    """True when a call of dispatcher with these arguments would run at once: its machine
    code for their types is in memory (or dispatcher is a plain Python function)."""
    dispatcher, args = _target(dispatcher, args)
    sig = _signature(dispatcher, args)
    return sig is None or sig in dispatcher.overloads


def compile_for(dispatcher, *args):
    """Compile dispatcher for these arguments' types, or load it from numba's disk cache,
    without running it; True when that took a compile or a load (False: already in memory,
    or not a numba dispatcher)."""
    dispatcher, args = _target(dispatcher, args)
    sig = _signature(dispatcher, args)
    if sig is None or sig in dispatcher.overloads:
        return False
    dispatcher.compile(sig)
    return True


def load_cached(dispatcher, *args):
    """True when dispatcher can run these arguments without compiling: its machine code is
    in memory, or numba's disk cache holds it (then it is loaded, as a call would). Never
    compiles; False for a plain Python function or a numba whose cache works differently."""
    dispatcher, args = _target(dispatcher, args)
    sig = _signature(dispatcher, args)
    if sig is None:
        return False
    if sig in dispatcher.overloads:
        return True
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "load_overload", None)
    context = getattr(dispatcher, "targetctx", None)
    if load is None or context is None or not hasattr(dispatcher, "add_overload"):
        return False
    cres = load(sig, context)
    if cres is None:
        return False
    # What numba's Dispatcher.compile does with a cache hit.
    hits = getattr(dispatcher, "_cache_hits", None)
    if hits is not None:
        hits[sig] += 1
    if not cres.objectmode:
        context.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
    dispatcher.add_overload(cres)
    return True


def ready(calls):
    """True when every (dispatcher, args) in calls can run at once: in memory, or loaded
    now from numba's disk cache."""
    return all(is_compiled(kernel, *args) or load_cached(kernel, *args)
               for kernel, args in calls)
