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
(compiled when it was built, cpu/ship.py), under the manifest's checks; see below.
"""
import contextlib
import functools
import hashlib
import os
import pickle
import sys

from numba.core import caching

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
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


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
    up first among the shipped kernels (`load_shipped`) when its function is the package's."""
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if type(cache_file) is caching.IndexDataCacheFile:
        cache_file.__class__ = LockedIndexDataCacheFile  # same state, locked methods
    if (type(cache) is caching.FunctionCache
            and getattr(cache._impl.locator, "fastmlp_locator", False)):
        cache.__class__ = PackageFunctionCache
    return dispatcher


# -- kernels compiled ahead of time, shipped in the package --------------------------------
# cpu/ship.py compiles the kernels of the common fits for a CPU level most x86-64 machines
# since 2013-2015 have (x86-64-v3: AVX2, FMA), into numba's own cache format, and a wheel
# carries them in fastmlp/_kernels: a fresh install loads its first fit's kernels instead of
# compiling them for 20 s. They are used where they can run and say they were built from
# these very sources by this numba and Python (`shipped_manifest`); then always, not only
# when nothing else is cached, so that a machine's results never depend on what its cache
# held. What they do not cover compiles for this CPU and is cached as before.

#: Where the shipped kernels are: FASTMLP_KERNELS_DIR, else the package's _kernels.
SHIPPED_DIR = os.environ.get("FASTMLP_KERNELS_DIR") or os.path.join(PACKAGE_DIR, "_kernels")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def host_features():
    """The CPU features LLVM sees on this machine that it has, by LLVM's names."""
    import llvmlite.binding as ll
    try:
        return {name for name, on in ll.get_host_cpu_features().items() if on}
    except RuntimeError:  # LLVM cannot tell on this platform
        return set()


def python_tag():
    return sys.implementation.cache_tag


def shipped_manifest(directory=None):
    """The shipped kernels' manifest when this process can use them, else None."""
    return _shipped(directory or SHIPPED_DIR)[0]


def why_not_shipped(directory=None):
    """Why this process does not use the shipped kernels, in a sentence (None: it does)."""
    return _shipped(directory or SHIPPED_DIR)[1]


@functools.lru_cache(maxsize=None)
def _shipped(directory):
    """(manifest, None) when the kernels in directory can be used: they were built from
    these sources (source_digest, the BLAS choice) by this numba and Python, this CPU has
    every feature their code needs, numba is not told to compile for another CPU
    (NUMBA_CPU_NAME/NUMBA_CPU_FEATURES), and `use_shipped` is on; else (None, why)."""
    import json

    import numba

    from . import blas
    if not use_shipped:
        return None, "turned off (FASTMLP_SHIPPED_KERNELS=0, or config.CACHE off)"
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return None, "numba is told to compile for another CPU (NUMBA_CPU_NAME/FEATURES)"
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        return None, f"no readable {path} ({error.__class__.__name__}): none were shipped"
    expected = {"format": MANIFEST_FORMAT, "numba": numba.__version__, "python": python_tag(),
                "sources": source_digest(), "blas": _jsonable(blas.stamp())}
    for key, value in expected.items():
        if manifest.get(key) == value:
            continue
        if key == "sources":
            return None, "built from other kernel sources than these"
        return None, f"built with {key} {manifest.get(key)!r}, this process has {value!r}"
    missing = sorted(set(manifest.get("requires", ["?"])) - host_features())
    if missing:
        return None, f"this CPU lacks {', '.join(missing)}, which their code needs"
    return manifest, None


def _jsonable(value):
    """value as it reads back from JSON (tuples become lists)."""
    import json
    return json.loads(json.dumps(value))


class PackageFunctionCache(caching.FunctionCache):
    """numba's cache of one package function, the shipped kernels looked up first."""

    def _load_overload(self, sig, target_context):
        if self._enabled:
            cres = load_shipped(self, sig, target_context)
            if cres is not None:
                return cres
        return super()._load_overload(sig, target_context)


class DamagedKernelFile(Exception):
    """A shipped kernel file whose bytes are not the ones its manifest lists."""


class ShippedIndexDataCacheFile(caching.IndexDataCacheFile):
    """A shipped function's index and data files, each read only when its sha256 is the one
    the manifest lists for it (a damaged install compiles instead of loading bad code)."""

    def __init__(self, directory, relative_dir, filename_base, source_stamp, digests):
        super().__init__(os.path.join(directory, relative_dir), filename_base, source_stamp)
        self._relative_dir = relative_dir
        self._digests = digests

    def _check(self, name):
        path = os.path.join(self._cache_path, name)
        try:
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            return False
        listed = self._digests.get(os.path.normpath(os.path.join(self._relative_dir, name)))
        if digest != listed:
            raise DamagedKernelFile(f"{path}: its sha256 is not the manifest's")
        return True

    def _load_index(self):
        return super()._load_index() if self._check(self._index_name) else {}

    def _load_data(self, name):
        self._check(name)
        return super()._load_data(name)


def load_shipped(cache, sig, target_context, directory=None):
    """The compile result for sig from the shipped kernels of cache's function, or None
    (not shipped; or a file damaged, which warns once and leaves it to compile)."""
    directory = directory or SHIPPED_DIR
    manifest = shipped_manifest(directory)
    if manifest is None:
        return None
    codegen = target_context.codegen()
    magic = tuple(manifest["magic"])
    if codegen.magic_tuple()[0] != magic[0]:  # another target triple
        return None
    locator = cache._impl.locator
    where = os.path.relpath(os.path.dirname(os.path.abspath(locator._py_file)), PACKAGE_DIR)
    files = ShippedIndexDataCacheFile(directory, where, cache._impl.filename_base,
                                      locator.get_source_stamp(), manifest.get("sha256", {}))
    _, _, code = cache._index_key(sig, codegen)
    try:
        data = files.load((sig, magic, code))
    except Exception as error:  # a damaged file: unpickling raises many kinds
        _warn_damaged(directory, error)
        return None
    return None if data is None else cache._impl.rebuild(target_context, data)


_warned = set()


def _warn_damaged(directory, error):
    """One RuntimeWarning per directory of shipped kernels with a damaged file."""
    import warnings
    if directory in _warned:
        return
    _warned.add(directory)
    warnings.warn(f"fastmlp: a shipped kernel file in {directory} cannot be used "
                  f"({error}); the kernels it holds compile instead. Reinstalling fastmlp "
                  "restores them.", RuntimeWarning, stacklevel=2)


#: Whether package kernels look in the shipped kernels first: config.SHIPPED_KERNELS (and
#: config.CACHE), handed over by `install`.
use_shipped = True


def install(shipped=True):
    """Put the package's locators first in numba's list (once per process); `shipped`:
    whether the shipped kernels may be used."""
    global use_shipped
    use_shipped = shipped
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
