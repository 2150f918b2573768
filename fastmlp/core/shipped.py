"""Kernels compiled ahead of time and shipped in the package (fastmlp/_kernels, built by
cpu/ship.py when the package is built), and the loader that config installs in front of
numba's cache for every package kernel (core/jitcache.load_first).
"""
import functools
import os
import sys

from numba.core import caching

from .. import files
from . import jitcache

# cpu/ship.py compiles the kernels of the common fits for a CPU level most x86-64 machines
# since 2013-2015 have (x86-64-v3: AVX2, FMA), into numba's own cache format, and a wheel
# carries them in fastmlp/_kernels: a fresh install loads its first fit's kernels instead of
# compiling them for 20 s. They are used where they can run and say they were built from
# these very sources by this numba and Python (`shipped_manifest`); then always, not only
# when nothing else is cached, so that a machine's results never depend on what its cache
# held. What they do not cover compiles for this CPU and is cached as before.

#: Where the shipped kernels are: FASTMLP_KERNELS_DIR, else the package's _kernels.
SHIPPED_DIR = (os.environ.get("FASTMLP_KERNELS_DIR")
               or os.path.join(jitcache.PACKAGE_DIR, "_kernels"))
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
    (NUMBA_CPU_NAME/NUMBA_CPU_FEATURES), and config installed load_shipped; else
    (None, why)."""
    import json

    import numba
    if jitcache.load_first is not load_shipped:
        return None, "turned off (FASTMLP_SHIPPED_KERNELS=0, or config.CACHE off)"
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return None, "numba is told to compile for another CPU (NUMBA_CPU_NAME/FEATURES)"
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        return None, f"no readable {path} ({error.__class__.__name__}): none were shipped"
    for key, value in identity().items():
        if manifest.get(key) == value:
            continue
        if key == "sources":
            return None, "built from other kernel sources than these"
        return None, f"built with {key} {manifest.get(key)!r}, this process has {value!r}"
    missing = sorted(set(manifest.get("requires", ["?"])) - host_features())
    if missing:
        return None, f"this CPU lacks {', '.join(missing)}, which their code needs"
    return manifest, None


def status(directory=None):
    """A line saying whether this process loads the shipped kernels in directory (the
    package's by default), and why not; and True when it does."""
    directory = directory or SHIPPED_DIR
    manifest = shipped_manifest(directory)
    if manifest is None:
        return f"shipped kernels not used: {why_not_shipped(directory)}", False
    return (f"shipped kernels in use: {manifest['files']} files for {manifest['target']} "
            f"(workloads {', '.join(manifest['workloads'])}) in {directory}"), True


def identity():
    """What shipped kernels must have been built with to load in this process, as the
    manifest holds it (read back from JSON): the manifest format, numba, Python, the kernel
    sources' digest and the BLAS library the kernels call."""
    import json

    import numba

    from . import blas
    return {"format": MANIFEST_FORMAT, "numba": numba.__version__, "python": python_tag(),
            "sources": jitcache.source_digest(),
            "blas": json.loads(json.dumps(blas.stamp()))}  # a tuple reads back as a list


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
            digest = files.digest(path)
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
    where = os.path.relpath(os.path.dirname(os.path.abspath(locator._py_file)),
                            jitcache.PACKAGE_DIR)
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
