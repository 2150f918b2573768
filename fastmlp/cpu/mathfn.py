"""Scalar maths the kernels call per element, written so LLVM can vectorise the loops.

libm's expf is a scalar call that blocks vectorisation of every loop it sits in, so float32
kernels use `fast_exp`: Cody-Waite range reduction to r in [-ln2/2, ln2/2], a degree-7
Taylor polynomial (truncation < 2e-9 relative, below float32's half-ulp of 6e-8) and a
2**n scale assembled in the exponent bits; no branches, no tables. float64 kernels keep
math.exp, exact to the last bit gradcheck can see.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

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


def fast_exp(x):
    """exp(x): exp32 for float32 (vectorisable), math.exp otherwise."""
    return math.exp(x)


@overload(fast_exp)
def _fast_exp(x):
    if x == types.float32:
        return lambda x: exp32(x)
    return lambda x: math.exp(x)
