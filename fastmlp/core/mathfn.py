"""Scalar maths the kernels call per element, written so LLVM can vectorise the loops.

The fast forms are for the CPU only: compiled for CUDA (core/scalars.py's functions run
there as device functions), fast_exp, fast_log, fast_log1p and fast_tanh are math's
(libdevice's), as a GPU thread computes one element and has no loop to vectorise.

libm's expf is a scalar call that blocks vectorisation of every loop it sits in, so float32
kernels use `fast_exp`: Cody-Waite range reduction to r in [-ln2/2, ln2/2], a degree-7
Taylor polynomial (truncation < 2e-9 relative, below float32's half-ulp of 6e-8) and a
2**n scale assembled in the exponent bits; no branches, no tables. float64 kernels keep
math.exp, exact to the last bit gradcheck can see.

`fast_log` and `fast_log1p` do the same for the losses' logarithms (libm's log1pf took 30 ns
a call, two thirds of an xor training step): the exponent is read from the bits, the
mantissa brought into [sqrt(1/2), sqrt(2)), and its log evaluated as fdlibm's logf does,
with the same published minimax coefficients; log1p adds to log(1 + x) the first-order
correction for the rounding of 1 + x. `fast_tanh` (libm's tanhf is scalar too: a tanh layer
of 128 x 256 units cost a third of a fashion-sized training step) is an odd polynomial near
0 and 1 - 2 / (exp(2|x|) + 1) beyond. tests/cpu/test_mathfn.py bounds the errors in ulp.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from ..config import jit

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693145751953125)       # ln 2 split so n * _LN2_HI is exact
_LN2_LO = np.float32(1.428606765330187e-06)
_EXP_MAX = np.float32(88.37)                   # 2**127.5: still finite after the scaling
_EXP_MIN = np.float32(-87.33)                  # smallest x with a normal result
_HALF = np.float32(0.5)
_C2, _C3, _C4, _C5, _C6, _C7 = (np.float32(1.0 / math.factorial(k)) for k in range(2, 8))
_ONE = np.float32(1.0)


@intrinsic
def _int32_bits_as_float32(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _float32_bits_as_int32(typingctx, x):
    """Reinterpret a float32's bits as an int32 (no conversion)."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@jit(inline="always")
def exp32(x):
    # Selects rather than min/max (whose Python NaN rules block vectorisation); written so
    # that a NaN fails both tests and propagates.
    x = _EXP_MIN if x < _EXP_MIN else x
    x = _EXP_MAX if x > _EXP_MAX else x
    n = np.floor(x * _LOG2E + _HALF)  # np.floor stays float32; math.floor makes an int
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _ONE
    p = p * r + _ONE
    # n in [-126, 128): 2**n split in two halves so the top of the range stays finite
    k = np.int32(n)
    half = k >> np.int32(1)
    scale_a = _int32_bits_as_float32((half + np.int32(127)) << np.int32(23))
    scale_b = _int32_bits_as_float32((k - half + np.int32(127)) << np.int32(23))
    return p * scale_a * scale_b


_SQRT2 = np.float32(math.sqrt(2.0))
_TWO23 = np.float32(2.0 ** 23)
_TINY = np.float32(2.0 ** -126)                # smallest normal float32
# The minimax coefficients of fdlibm's logf (FreeBSD k_logf.h): R(z) ~ log((1+s)/(1-s)) - 2s.
_LG1 = np.float32(0.66666662693)
_LG2 = np.float32(0.40000972152)
_LG3 = np.float32(0.28498786688)
_LG4 = np.float32(0.24279078841)
_TWO = np.float32(2.0)
_INF = np.float32(np.inf)
_NAN = np.float32(np.nan)


@jit(inline="always")
def log32(x):
    # Subnormals are scaled into the normal range first; 0, negatives, inf and NaN are
    # settled by the selects at the end.
    sub = x < _TINY
    y = x * _TWO23 if sub else x
    bits = _float32_bits_as_int32(y)
    k = ((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127)
    k = k - np.int32(23) if sub else k
    f = _int32_bits_as_float32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F800000))
    big = f > _SQRT2
    f = f * _HALF if big else f
    k = k + np.int32(1) if big else k
    f = f - _ONE  # exact (Sterbenz): log(1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1]
    s = f / (_TWO + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * _LG3) + w * (_LG2 + w * _LG4)
    hfsq = _HALF * f * f
    kf = np.float32(k)
    r = kf * _LN2_HI - ((hfsq - (s * (hfsq + r) + kf * _LN2_LO)) - f)
    r = -_INF if x == 0 else r
    r = _INF if x == _INF else r
    return r if x >= 0 else _NAN  # negatives and NaN


@jit(inline="always")
def log1p32(x):
    # log(u) for u = 1 + x rounded, plus the first-order correction (x - (u - 1)) / u
    u = _ONE + x
    r = log32(u) + (x - (u - _ONE)) / u
    r = x if u == _ONE else r
    r = -_INF if u == 0 else r
    return _INF if u == _INF else r


# tanh(x) = x + x^3 g(x^2) for |x| < _TANH_SMALL, g a degree-4 polynomial fitted here (least
# squares on 400 Chebyshev nodes of u = x^2 in [0, 0.625^2], weighted by the error it makes
# in tanh, against 40-digit mpmath values): relative error 4.5e-9 in tanh, below float32's
# half-ulp of 6e-8. Above it, 1 - 2 / (exp(2|x|) + 1) with the sign of x: no cancellation
# worth an ulp there, as tanh(x) >= 0.55; |x| is capped at 10, where that rounds to 1 (as
# tanh does from 9.02 on). Below 2**-12, tanh(x) rounds to x, which also keeps -0.0.
_TANH_TINY = np.float32(2.0 ** -12)
_TANH_SMALL = np.float32(0.625)
_TANH_BIG = np.float32(10.0)
_TG0, _TG1, _TG2, _TG3, _TG4 = (np.float32(c) for c in (
    -0.3333328128411301, 0.13331431753507317, -0.053739156503496456, 0.0206378614887974,
    -0.005704042524511038))


@jit(inline="always")
def tanh32(x):
    a = abs(x)
    u = x * x
    g = _TG4
    g = g * u + _TG3
    g = g * u + _TG2
    g = g * u + _TG1
    g = g * u + _TG0
    small = x + x * u * g
    c = a if a < _TANH_BIG else _TANH_BIG  # NaN goes to 10 here and is put back below
    t = _ONE - _TWO / (exp32(c + c) + _ONE)
    big = t if x > 0 else -t
    r = small if a < _TANH_SMALL else big
    r = x if a < _TANH_TINY else r
    return r if a == a else x  # NaN stays NaN


def _float32_fast(exact, fast32):
    """A function for the kernels: fast32 on a float32, exact (math's) on anything else."""
    def function(x):
        return exact(x)

    @overload(function, target="cpu")
    def _choose(x):
        if x == types.float32:
            return lambda x: fast32(x)
        return lambda x: exact(x)

    @overload(function, target="cuda")
    def _on_device(x):
        return lambda x: exact(x)

    function.__name__ = f"fast_{exact.__name__}"
    function.__doc__ = (f"{exact.__name__}(x): {fast32.__name__} for float32 on the CPU "
                        f"(vectorisable), math.{exact.__name__} otherwise.")
    return function


fast_exp = _float32_fast(math.exp, exp32)
fast_log = _float32_fast(math.log, log32)
fast_log1p = _float32_fast(math.log1p, log1p32)
fast_tanh = _float32_fast(math.tanh, tanh32)


def cast_like(v, c):
    """c converted to the type of the scalar v (float32 stays float32)."""
    return type(v)(c)


def flush_subnormal(v):
    """v, or zero when v is subnormal (0 < |v| < the type's smallest normal number); NaN
    stays NaN."""
    return type(v)(0) if abs(v) < np.finfo(type(v)).tiny else v


@overload(flush_subnormal)
def _flush_subnormal(v):
    dt = as_dtype(v).type
    tiny, zero = dt(np.finfo(dt).tiny), dt(0)
    return lambda v: zero if abs(v) < tiny else v


@overload(cast_like)
def _cast_like(v, c):
    dt = as_dtype(v).type
    return lambda v, c: dt(c)


@intrinsic
def select(typingctx, condition, a, b):
    """a if condition else b, as one LLVM select: no branch, so no basic blocks in numba's IR
    (numba compiles long straight-line code faster) and a loop around it can vectorise. a and
    b must have the same type."""
    if not (isinstance(condition, types.Boolean) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return a(condition, a, b), codegen
