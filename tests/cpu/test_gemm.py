"""cpu/gemm.py's three products against numpy, by the bundled OpenBLAS's symbol (C arrays)
and by np.dot (other layouts); and core/blas.symbol_library's choice of library."""
import glob
import os

import numpy as np
import pytest
from numba import njit

from fastmlp.core import blas
from fastmlp.cpu import gemm

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-13, atol=1e-13)}


def numpy_bundles_openblas():
    """Whether numpy's own files hold an OpenBLAS (a wheel from PyPI), looked up here
    independently of core/blas, so a broken lookup there fails rather than skips."""
    here = os.path.dirname(os.path.abspath(np.__file__))
    return glob.glob(os.path.join(here + ".libs", "libscipy_openblas64_*")) \
        + glob.glob(os.path.join(here, ".dylibs", "libscipy_openblas64_*"))


@njit(cache=False)  # not from the disk cache: its LLVM IR is inspected below
def products(ab, atc, cbt, a, b, c):
    gemm.gemm_nn(ab, a, b)   # ab = a @ b
    gemm.gemm_tn(atc, a, c)  # atc = a^T @ c
    gemm.gemm_nt(cbt, c, b)  # cbt = c @ b^T


def _check(a, b, c, dtype, **tol):
    m, k = a.shape
    out = [np.full(shape, np.nan, dtype) for shape in ((m, b.shape[1]), (k, c.shape[1]),
                                                       (m, b.shape[0]))]
    products(*out, a, b, c)
    for got, expected in zip(out, (a @ b, a.T @ c, c @ b.T)):
        np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (64, 784, 10), (1, 1, 1), (3, 0, 4), (0, 2, 3)])
def test_products_match_numpy(rng, dtype, m, k, n):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    a.flags.writeable = False  # the kernels pass read-only views of the batch
    _check(a, b, c, dtype, **TOL[dtype])


def test_views_that_are_not_c_contiguous_go_to_np_dot(rng):
    a = np.asfortranarray(rng.standard_normal((6, 4)).astype(np.float32))
    b = rng.standard_normal((4, 9)).astype(np.float32)[:, :5]
    c = rng.standard_normal((6, 5)).astype(np.float32)
    _check(a, b, c, np.float32, rtol=1e-5, atol=1e-5)


def _calls_symbol():
    """Whether the last compiled `products` calls the library's symbol."""
    llvm = products.inspect_llvm(products.nopython_signatures[-1].args)
    return any(name in llvm for name in blas.SYMBOLS)


def test_c_contiguous_products_call_the_library_by_symbol(rng):
    """Chosen when numba types the call: the symbol for C-contiguous float arrays (every
    view the kernels pass) wherever symbol_library found the library, np.dot otherwise."""
    a, b, c = (rng.standard_normal(shape).astype(np.float32) for shape in ((6, 4), (4, 5),
                                                                           (6, 5)))
    _check(a, b, c, np.float32, rtol=1e-5, atol=1e-5)
    assert _calls_symbol() == (blas.symbol_library() is not None) == gemm.BY_SYMBOL
    if numpy_bundles_openblas():
        assert gemm.BY_SYMBOL, "numpy bundles OpenBLAS here, yet the kernels call np.dot"
    fortran = [np.asfortranarray(x) for x in (a, b, c)]
    _check(*fortran, np.float32, rtol=1e-5, atol=1e-5)
    assert not _calls_symbol()


def test_the_bundled_openblas_is_found_and_can_be_turned_off(monkeypatch):
    found = blas.symbol_library.__wrapped__()
    if numpy_bundles_openblas():
        assert found is not None and found[1] >= blas.MIN_OPENBLAS, found
        assert blas.stamp() == (os.path.basename(found[0]), found[1])
    else:
        assert found is None
    monkeypatch.setenv(blas.OFF_VARIABLE, "0")
    assert blas.symbol_library.__wrapped__() is None


_LIMITED_PROBE = """
import json, sys
from threadpoolctl import threadpool_info
from fastmlp.core import blas
def seen():
    return sorted((lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
                  if lib["user_api"] == "blas")
with blas.limit_threads(1):
    before, imported = seen(), "scipy.linalg" in sys.modules
    import scipy.linalg.cython_blas  # what numba's np.dot loads
    after = seen()
print(json.dumps([before, after, imported]))
"""


def test_the_limit_holds_the_blas_np_dot_loads_later_without_importing_scipy_linalg():
    """limit_threads loads scipy's BLAS before the limit, so np.dot's first call (which
    imports scipy.linalg.cython_blas) finds it limited already; it does so without importing
    scipy.linalg (0.24 s of a first fit), in a fresh process where nothing else had."""
    import json
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _LIMITED_PROBE], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert not imported
    assert before == after and all(threads == 1 for _, threads in after), (before, after)


def test_without_the_extension_file_the_limit_imports_scipy_blas(monkeypatch):
    import importlib.util
    imported = []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(blas.importlib, "import_module", imported.append)
    blas._load_scipy_blas()
    assert imported == ["scipy.linalg.cython_blas"]


def test_the_stubs_say_they_run_compiled_only():
    with pytest.raises(NotImplementedError, match="inside compiled kernels only"):
        gemm.gemm_nn(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)))


def test_shapes_that_do_not_match_are_refused_as_np_dot_refuses_them():
    a, b = np.ones((3, 4), np.float32), np.ones((5, 2), np.float32)
    with pytest.raises(ValueError):
        products(np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32),
                 np.zeros((3, 5), np.float32), a, b, np.ones((3, 2), np.float32))
