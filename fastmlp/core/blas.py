"""The BLAS library the kernels call, and its threads while they do.

`symbol_library` finds the OpenBLAS that numpy's wheels bundle, which cpu/gemm.py calls by
symbol; without one (a distribution's or conda's numpy, or FASTMLP_BLAS_BY_SYMBOL=0) the
kernels call numba's np.dot, which reaches scipy's OpenBLAS. The answer is part of numba's
cache stamp (core/jitcache.py): a kernel compiled to call the symbol is never loaded where
the library is not.

`limit_threads` sets the BLAS libraries' threads (threadpoolctl, a dependency of
scikit-learn). numba's np.dot calls scipy's OpenBLAS, which a kernel loads when it is first
compiled or read from numba's cache: a limit set before that would miss it, so the library
is loaded before the controller (made once) looks for the loaded libraries. It is loaded as
the dynamic loader loads it for scipy.linalg.cython_blas (that extension's file opened as a
shared library, its dependencies found by its own search path), not by importing
scipy.linalg: 0.24 s of a first fit's start where nothing else imports it.
"""
import contextlib
import ctypes
import functools
import glob
import importlib
import importlib.machinery
import importlib.util
import os
import re

#: numpy's wheels bundle an OpenBLAS built for 64-bit integers, its symbols prefixed
#: "scipy_" and suffixed "64_". From 0.3.31 its sgemm ran these networks' products
#: 1.04-1.31x faster than the 0.3.30 that np.dot reaches through scipy (docs/tuning.md).
MIN_OPENBLAS = (0, 3, 31)
SYMBOLS = ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_")
#: Set to 0 to make the kernels call np.dot (read once per process, before the first kernel).
OFF_VARIABLE = "FASTMLP_BLAS_BY_SYMBOL"


@functools.lru_cache(maxsize=None)
def symbol_library():
    """(path, version) of the OpenBLAS the kernels call by symbol, or None: turned off, no
    OpenBLAS bundled with numpy, one without the symbols, or one older than MIN_OPENBLAS.
    Read once per process: every kernel compiled or loaded in it follows this answer."""
    if os.environ.get(OFF_VARIABLE, "1") == "0":
        return None
    import numpy
    here = os.path.dirname(os.path.abspath(numpy.__file__))
    paths = sorted(glob.glob(os.path.join(here + ".libs", "libscipy_openblas64_*"))
                   + glob.glob(os.path.join(here, ".dylibs", "libscipy_openblas64_*")))
    if len(paths) != 1:
        return None
    try:
        library = ctypes.CDLL(paths[0])
        for name in SYMBOLS:
            getattr(library, name)
        get_config = library.scipy_openblas_get_config64_
    except (OSError, AttributeError):
        return None
    get_config.restype = ctypes.c_char_p
    found = re.match(rb"OpenBLAS (\d+)\.(\d+)\.(\d+)", get_config() or b"")
    if found is None:
        return None
    version = tuple(int(part) for part in found.groups())
    return (paths[0], version) if version >= MIN_OPENBLAS else None


def stamp():
    """What numba's cache stamp holds of the choice: the library's file name and version,
    or None for np.dot."""
    found = symbol_library()
    return None if found is None else (os.path.basename(found[0]), found[1])

_controller = None


def _load_scipy_blas():
    """Load the BLAS that scipy.linalg.cython_blas links to, without importing scipy.linalg:
    that extension's file opened as a shared library (its module is not initialised; an
    import later finds the same library loaded). Where that fails, the import."""
    spec = importlib.util.find_spec("scipy")  # a top-level name: found, not imported
    for directory in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "linalg", "cython_blas" + suffix)
            if os.path.isfile(path):
                try:
                    ctypes.CDLL(path)
                    return
                except OSError:
                    break
    importlib.import_module("scipy.linalg.cython_blas")


@contextlib.contextmanager
def limit_threads(limit):
    """The BLAS libraries at `limit` threads for the duration of the block; None leaves them
    alone."""
    global _controller
    if limit is None:
        yield
        return
    if _controller is None:
        _load_scipy_blas()
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    with _controller.limit(limits=limit, user_api="blas"):
        yield
