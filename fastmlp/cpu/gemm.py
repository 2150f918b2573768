"""The kernels' matrix products: out = a @ b (gemm_nn), a^T @ b (gemm_tn), a @ b^T (gemm_nt),
every array a 2-D row-major view (the workspace's and the parameters' slices).

Where core/blas.symbol_library finds the OpenBLAS that numpy's wheels bundle (0.3.31 on),
the products call its cblas_?gemm by symbol: llvmlite loads the library into the process
and numba.types.ExternalFunction declares the symbols, so a kernel that calls them is cached
and loads in a fresh process like any other (a ctypes pointer would make numba refuse to
cache it). Elsewhere, and for a view that is not row-major after all, they call numba's
np.dot, which reaches scipy's OpenBLAS: the same products, rounded by another build.
"""
import numpy as np
from numba import types

from ..config import jit
from ..core.blas import SYMBOLS, symbol_library

# cblas.h's CBLAS_ORDER and CBLAS_TRANSPOSE
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

LIBRARY = symbol_library()
BY_SYMBOL = LIBRARY is not None


def _declare(name, dtype):
    i32, i64, ptr = types.int32, types.int64, types.voidptr
    return types.ExternalFunction(name, types.void(i32, i32, i32, i64, i64, i64, dtype, ptr,
                                                   i64, ptr, i64, dtype, ptr, i64))


SGEMM, DGEMM = _declare(SYMBOLS[0], types.float32), _declare(SYMBOLS[1], types.float64)


@jit(inline="always")
def _rows(x):
    """x's row stride in elements, or 0 when its rows are not contiguous."""
    return x.strides[0] // x.itemsize if x.strides[1] == x.itemsize else 0


@jit(inline="always")
def _gemm(out, a, b, trans_a, trans_b, m, n, k):
    """out (m, n) = op(a) @ op(b) by the library's symbol; False (nothing done) when an
    array is not row-major or a side is 0, for np.dot to do it."""
    lda, ldb, ldc = _rows(a), _rows(b), _rows(out)
    if m == 0 or n == 0 or k == 0 or lda < max(1, a.shape[1]) or ldb < max(1, b.shape[1]) \
            or ldc < max(1, n):
        return False
    if out.itemsize == 4:
        SGEMM(ROW_MAJOR, trans_a, trans_b, m, n, k, np.float32(1), a.ctypes, lda, b.ctypes,
              ldb, np.float32(0), out.ctypes, ldc)
    else:
        DGEMM(ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, a.ctypes, lda, b.ctypes, ldb, 0.0,
              out.ctypes, ldc)
    return True


@jit(inline="always")
def symbol_nn(out, a, b):
    if not _gemm(out, a, b, NO_TRANS, NO_TRANS, a.shape[0], b.shape[1], a.shape[1]):
        np.dot(a, b, out)


@jit(inline="always")
def symbol_tn(out, a, b):
    if not _gemm(out, a, b, TRANS, NO_TRANS, a.shape[1], b.shape[1], a.shape[0]):
        np.dot(a.T, b, out)


@jit(inline="always")
def symbol_nt(out, a, b):
    if not _gemm(out, a, b, NO_TRANS, TRANS, a.shape[0], b.shape[0], a.shape[1]):
        np.dot(a, b.T, out)


@jit(inline="always")
def dot_nn(out, a, b):
    np.dot(a, b, out)


@jit(inline="always")
def dot_tn(out, a, b):
    np.dot(a.T, b, out)


@jit(inline="always")
def dot_nt(out, a, b):
    np.dot(a, b.T, out)


if BY_SYMBOL:
    import llvmlite.binding
    llvmlite.binding.load_library_permanently(LIBRARY[0])
    gemm_nn, gemm_tn, gemm_nt = symbol_nn, symbol_tn, symbol_nt
else:
    gemm_nn, gemm_tn, gemm_nt = dot_nn, dot_tn, dot_nt
