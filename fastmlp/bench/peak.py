"""The compiled loop behind run.fma_peak_gflops."""
import numba

from .. import config

FMAS_PER_PASS = 8


@numba.njit(cache=config.CACHE, fastmath={"contract"})  # contract: a*b+c fuses; no reassoc
def fma_chains(acc, passes):
    """Each lane of acc (float32, a multiple of 4 long) goes through FMAS_PER_PASS dependent
    multiply-adds per pass. The lanes are independent, and each loop iteration advances four
    of them a quarter of the array apart, which numba vectorises into four 8-lane chains
    interleaved: with out-of-order execution across iterations enough chains are in flight
    to hide an FMA's latency, and the loop runs at the core's multiply-add throughput.
    Returns the FLOPs done."""
    m = acc.dtype.type(0.999)
    a = acc.dtype.type(1e-3)
    q = acc.shape[0] // 4
    for _ in range(passes):
        for j in range(q):
            x0, x1, x2, x3 = acc[j], acc[j + q], acc[j + 2 * q], acc[j + 3 * q]
            for _ in range(FMAS_PER_PASS):
                x0 = x0 * m + a
                x1 = x1 * m + a
                x2 = x2 * m + a
                x3 = x3 * m + a
            acc[j], acc[j + q], acc[j + 2 * q], acc[j + 3 * q] = x0, x1, x2, x3
    return 2.0 * FMAS_PER_PASS * 4 * q * passes
