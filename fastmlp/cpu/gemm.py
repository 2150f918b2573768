"""The kernels' matrix products: out = a @ b (gemm_nn), a^T @ b (gemm_tn), a @ b^T (gemm_nt),
every array a 2-D C-contiguous view (the workspace's and the parameters' slices).

Where core/blas.symbol_library finds the OpenBLAS that numpy's wheels bundle (0.3.31 on),
the products call its cblas_?gemm by symbol: llvmlite loads the library into the process
and numba.types.ExternalFunction declares the symbols, so a kernel that calls them is cached
and loads in a fresh process like any other (a ctypes pointer would make numba refuse to
cache it). Elsewhere, and for arrays that are not C-contiguous (chosen when numba types the
call, so only one of the two is compiled), they call numba's np.dot, which reaches scipy's
OpenBLAS: the same products, rounded by another build.
"""
import numpy as np
from numba import types
from numba.extending import overload

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


@jit(inline="always")  # one compile per product and signature would cost seconds cold
def _call(gemm_fn, one, zero, out, a, b, trans_a, trans_b):
    """out = op(a) @ op(b), every array C-contiguous (a row's length is its leading
    dimension), by the library's symbol; the shapes checked as np.dot checks them."""
    m, n = out.shape
    k = a.shape[0] if trans_a == TRANS else a.shape[1]
    if (a.shape[1] if trans_a == TRANS else a.shape[0]) != m \
            or (b.shape[1] if trans_b == TRANS else b.shape[0]) != k \
            or (b.shape[0] if trans_b == TRANS else b.shape[1]) != n:
        raise ValueError("cpu/gemm: matrix shapes do not match")
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty sum; the library would read an invalid leading dimension
        out[:, :] = 0
        return
    gemm_fn(ROW_MAJOR, trans_a, trans_b, m, n, k, one, a.ctypes, a.shape[1], b.ctypes,
            b.shape[1], zero, out.ctypes, n)


def _chosen(out, a, b):
    """(symbol, one, zero) for C-contiguous arrays of one float dtype (every view the
    kernels pass) when the library was found; else None, for np.dot."""
    if not (BY_SYMBOL and all(isinstance(x, types.Array) and x.layout == "C"
                              for x in (out, a, b))
            and out.dtype == a.dtype == b.dtype
            and out.dtype in (types.float32, types.float64)):
        return None
    if out.dtype == types.float32:
        return SGEMM, np.float32(1), np.float32(0)
    return DGEMM, 1.0, 0.0


def _product(stub, trans_a, trans_b, dot):
    """Overload a stub, chosen when numba types the call, so np.dot's code is not compiled
    beside the symbol's."""

    @overload(stub, inline="always")
    def implementation(out, a, b):
        found = _chosen(out, a, b)
        if found is None:
            return dot
        fn, one, zero = found
        return lambda out, a, b: _call(fn, one, zero, out, a, b, trans_a, trans_b)


def gemm_nn(out, a, b):
    """out = a @ b (compiled code only)."""
    raise NotImplementedError("cpu/gemm.gemm_nn runs inside compiled kernels only")


def gemm_tn(out, a, b):
    """out = a^T @ b (compiled code only)."""
    raise NotImplementedError("cpu/gemm.gemm_tn runs inside compiled kernels only")


def gemm_nt(out, a, b):
    """out = a @ b^T (compiled code only)."""
    raise NotImplementedError("cpu/gemm.gemm_nt runs inside compiled kernels only")


_product(gemm_nn, NO_TRANS, NO_TRANS, lambda out, a, b: np.dot(a, b, out))
_product(gemm_tn, TRANS, NO_TRANS, lambda out, a, b: np.dot(a.T, b, out))
_product(gemm_nt, NO_TRANS, TRANS, lambda out, a, b: np.dot(a, b.T, out))

if BY_SYMBOL:
    import llvmlite.binding
    llvmlite.binding.load_library_permanently(LIBRARY[0])
