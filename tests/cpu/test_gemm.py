"""cpu/gemm.py's three products, by the bundled OpenBLAS's symbol and by np.dot, against
numpy; and core/blas.symbol_library's choice of library."""
import glob
import os

import numpy as np
import pytest

from fastmlp.config import jit
from fastmlp.core import blas
from fastmlp.cpu import gemm

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-13, atol=1e-13)}


def _bundled():
    here = os.path.dirname(os.path.abspath(np.__file__))
    return glob.glob(os.path.join(here + ".libs", "libscipy_openblas64_*")) \
        + glob.glob(os.path.join(here, ".dylibs", "libscipy_openblas64_*"))


def _products(nn, tn, nt):
    @jit
    def products(ab, atc, cbt, a, b, c):
        nn(ab, a, b)      # ab = a @ b
        tn(atc, a, c)     # atc = a^T @ c
        nt(cbt, c, b)     # cbt = c @ b^T
    return products


VARIANTS = {"dot": _products(gemm.dot_nn, gemm.dot_tn, gemm.dot_nt),
            "symbol": _products(gemm.symbol_nn, gemm.symbol_tn, gemm.symbol_nt)}


@pytest.mark.parametrize("variant", ["dot", "symbol"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (64, 784, 10), (1, 1, 1), (3, 0, 4)])
def test_products_match_numpy(rng, variant, dtype, m, k, n):
    if variant == "symbol" and not gemm.BY_SYMBOL:
        pytest.fail("numpy bundles no OpenBLAS >= 0.3.31 here, or FASTMLP_BLAS_BY_SYMBOL=0: "
                    "the symbol variant cannot be called") if _bundled() else \
            pytest.skip("this numpy bundles no OpenBLAS (not a wheel from PyPI)")
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    a.flags.writeable = False  # the kernels pass read-only views of the batch
    out = [np.full(shape, np.nan, dtype) for shape in ((m, n), (k, n), (m, k))]
    VARIANTS[variant](*out, a, b, c)
    for got, expected in zip(out, (a @ b, a.T @ c, c @ b.T)):
        np.testing.assert_allclose(got, expected, **TOL[dtype])


@pytest.mark.parametrize("variant", ["dot", "symbol"])
def test_a_view_that_is_not_row_major_goes_to_np_dot(rng, variant):
    if variant == "symbol" and not gemm.BY_SYMBOL:
        pytest.skip("the symbol variant is off here (test_products_match_numpy says why)")
    a = np.asfortranarray(rng.standard_normal((6, 4)).astype(np.float32))
    b = rng.standard_normal((4, 5)).astype(np.float32)
    c = rng.standard_normal((6, 5)).astype(np.float32)
    out = [np.zeros((6, 5), np.float32), np.zeros((4, 5), np.float32),
           np.zeros((6, 4), np.float32)]
    VARIANTS[variant](*out, a, b, c)
    for got, expected in zip(out, (a @ b, a.T @ c, c @ b.T)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_row_major_views_with_longer_rows_go_by_symbol(rng):
    """A row stride above the row's length (a column slice) is still row-major: the
    library takes it as the leading dimension. (Outputs are always whole C arrays: numba's
    np.dot, the fallback, accepts no other.)"""
    if not gemm.BY_SYMBOL:
        pytest.skip("the symbol variant is off here (test_products_match_numpy says why)")
    a = rng.standard_normal((6, 7)).astype(np.float32)[:, :4]
    b = rng.standard_normal((4, 9)).astype(np.float32)[:, :5]
    c = rng.standard_normal((6, 8)).astype(np.float32)[:, :5]
    out = [np.zeros((6, 5), np.float32), np.zeros((4, 5), np.float32),
           np.zeros((6, 4), np.float32)]
    VARIANTS["symbol"](*out, a, b, c)
    for got, expected in zip(out, (a @ b, a.T @ c, c @ b.T)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_bundled_openblas_is_found_and_can_be_turned_off(monkeypatch):
    found = blas.symbol_library.__wrapped__()
    if _bundled():
        assert found is not None and found[1] >= blas.MIN_OPENBLAS, found
        assert blas.stamp() == (os.path.basename(found[0]), found[1])
    else:
        assert found is None
    monkeypatch.setenv(blas.OFF_VARIABLE, "0")
    assert blas.symbol_library.__wrapped__() is None


def test_kernels_use_what_symbol_library_found():
    assert gemm.BY_SYMBOL == (blas.symbol_library() is not None)
    expected = (gemm.symbol_nn, gemm.symbol_tn, gemm.symbol_nt) if gemm.BY_SYMBOL \
        else (gemm.dot_nn, gemm.dot_tn, gemm.dot_nt)
    assert (gemm.gemm_nn, gemm.gemm_tn, gemm.gemm_nt) == expected
