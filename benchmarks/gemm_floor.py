"""The floor under a GEMM-bound training step: its matrix products alone, against fastmlp's
whole step and JAX's, in one run.

    python -m benchmarks.gemm_floor [--seconds S] [--repeats R] [--cores P]

For each GEMM-bound workload (mnist-small, mnist-wide, fashion) this times the products one
training step cannot do without: for every layer the forward product A W, the weight
gradient A^T D and, past the first layer, the delta D W^T. Nothing else: no epilogue, gather,
loss, gradient sum or optimizer update. Two ways of using P cores (default: numba's threads,
one per core) are timed and the faster kept: the batch's rows split in P parts, each on its
own thread with one-thread BLAS (fastmlp's data-parallel kernel), or one part with P-thread
BLAS (its serial kernel, and what JAX does). A step cannot take less time than its products
done the faster way (unless a faster GEMM than the machine's BLAS does them), so a goal of
"k x JAX's samples/s" under which JAX's step divided by k is shorter than that floor cannot
be met by a change to fastmlp's kernels; the last columns say which goals that rules out.
The host's noise moves every figure by 5-15 % from run to run: read them within one run.

fastmlp's and JAX's steps are `fastmlp bench`'s rates (fastmlp.bench.fastmlp_rate and
jax_rate: compile excluded); all three are timed in --repeats rounds, side by side, and the
best of each kept. JAX is left out if not installed.
"""
import argparse
import importlib.util
import math
import time

import numba
import numpy as np
from numba import njit, prange

from fastmlp import bench
from fastmlp.bench import fastmlp_rate, sgemm_gflops
from fastmlp.blas import limit_threads
from fastmlp.workloads import WORKLOADS

GEMM_BOUND = ("mnist-small", "mnist-wide", "fashion")
#: the speed-ups over JAX the floor is checked against
TARGETS = (1.15, 1.4)


@njit
def _part_products(a, d, g, b, weights):
    """One part's forward, weight-gradient and delta products (np.dot with out=, as the
    kernels call them). A function of its own, as in the kernels: numba's parallel
    lowering would otherwise handle the np.dot calls of a prange body itself."""
    for l in range(len(weights)):
        np.dot(a[l], weights[l], d[l])          # forward: (rows, n_in) (n_in, n_out)
        np.dot(a[l].T, d[l], g[l])              # weight gradient: (n_in, n_out)
        if l > 0:
            np.dot(d[l], weights[l].T, b[l])    # delta into the layer below


@njit(parallel=True)
def _products(acts, deltas, weights, grads, back, steps):
    """`steps` times: every part's products, the parts side by side in a prange."""
    parts = len(acts)
    for _ in range(steps):
        for p in prange(parts):
            i = np.int64(p)
            _part_products(acts[i], deltas[i], grads[i], back[i], weights)


def floor_seconds(workload, cores, seconds):
    """Seconds per step of the step's products alone, the faster of the two ways of using
    `cores` (the module's docstring)."""
    with limit_threads(1):
        split = _time_products(workload, cores, seconds)
    if cores == 1:
        return split
    with limit_threads(cores):
        return min(split, _time_products(workload, 1, seconds))


def _time_products(workload, parts, seconds):
    """Seconds per step of the products with the rows in `parts` parts (best of 3 runs of
    >= seconds each)."""
    rng = np.random.default_rng(0)
    sizes = [workload.n_inputs] + [size for size, _ in workload.layers]
    rows = -(-workload.batch_size // parts)
    f32 = np.float32
    weights = numba.typed.List([rng.standard_normal((n_in, n_out)).astype(f32)
                                for n_in, n_out in zip(sizes, sizes[1:])])

    def per_part(shape_of):
        return numba.typed.List([numba.typed.List([np.ones(shape_of(l), f32) * 0.01
                                                   for l in range(len(weights))])
                                 for _ in range(parts)])

    acts = per_part(lambda l: (rows, sizes[l]))
    deltas = per_part(lambda l: (rows, sizes[l + 1]))
    grads = per_part(lambda l: (sizes[l], sizes[l + 1]))
    back = per_part(lambda l: (rows, sizes[l]))
    steps = 1
    _products(acts, deltas, weights, grads, back, steps)  # compile, warm caches
    while True:
        start = time.perf_counter()
        _products(acts, deltas, weights, grads, back, steps)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        steps = max(steps + 1, int(steps * 1.5 * seconds / max(elapsed, 1e-6)))
    best = elapsed
    for _ in range(2):
        start = time.perf_counter()
        _products(acts, deltas, weights, grads, back, steps)
        best = min(best, time.perf_counter() - start)
    return best / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=numba.get_num_threads())
    args = parser.parse_args(argv)
    jax_rate = bench.jax_rate if importlib.util.find_spec("optax") else None
    start_roofline = sgemm_gflops()
    rows = []
    for name in GEMM_BOUND:
        w = WORKLOADS[name]
        # Rounds of all three side by side, the best of each kept: the host's speed drifts
        # by tens of percent within minutes, and a floor and a step timed minutes apart can
        # cross.
        floor = fast = jax = math.inf
        for _ in range(args.repeats):
            floor = min(floor, floor_seconds(w, args.cores, args.seconds))
            fast = min(fast, 1.0 / fastmlp_rate(w, args.seconds, 1))
            if jax_rate is not None:
                jax = min(jax, 1.0 / jax_rate(w, args.seconds, 1))
        rows.append((name, w.flops_per_step() / floor / 1e9, floor, fast, jax))
    roofline = max(start_roofline, sgemm_gflops())  # the host's better moment
    print(f"numpy sgemm roofline: {roofline:.0f} GFLOP/s (the better of the run's start and "
          f"end); the products on {args.cores} core(s), the faster of a row split and "
          f"multi-threaded BLAS")
    head = (f"{'workload':12} {'products':>10} {'of roof':>8} {'fastmlp':>9} {'jax':>9}  "
            + "  ".join(f"{k}x jax" for k in TARGETS))
    print(head)
    print("-" * len(head))
    for name, gflops, floor, fast, jax in rows:
        row = f"{name:12} {floor * 1e6:8.0f}us {gflops / roofline:7.0%} {fast * 1e6:7.0f}us"
        if jax_rate is None:
            print(row + f" {'-':>9}")
            continue
        verdicts = []
        for k in TARGETS:  # the step fastmlp would need, against the floor
            need = jax / k
            verdicts.append(f"{need * 1e6:5.0f}us {'ok' if need >= floor else 'below floor'}")
        print(row + f" {jax * 1e6:7.0f}us  " + "  ".join(verdicts))


if __name__ == "__main__":
    main()
