"""How steady this machine's cores are: the same in-cache work timed on each core, alone and
with every core busy at once.

A training step split over a team of threads (cpu/parallel.py) ends at a barrier, so it runs
at the pace of its slowest core. On a host that shares its physical cores with other virtual
machines, one vCPU can run the same instructions half as fast as the other for seconds at a
time, and a two-thread step then gains little over one thread; the figures of any benchmark
move with it. Run this before trusting a benchmark's ratios:

    python -m fastmlp.bench.host [ROUNDS]

Each round prints every core's milliseconds for the same work, first all cores at once, then
each alone; the summary gives each core's fastest and slowest round and the largest ratio
between two cores in one round. (docs/tuning.md: what it showed on the development host.)
"""
import os
import sys
import threading
import time

import numpy as np

from ..config import jit
from ..core.cores import cores

#: Times the work repeats a 64 x 128 by 128 x 128 product: about 20 ms a call on one 3 GHz
#: core, long against the timer and the threads' start, and all of it in the core's own
#: L1/L2 caches, so memory does not enter.
REPEATS = 200


@jit
def _work(a, b, c, repeats):
    """c += a @ b, `repeats` times, as plain loops (no BLAS, no threads of its own)."""
    for _ in range(repeats):
        for i in range(a.shape[0]):
            for k in range(a.shape[1]):
                aik = a[i, k]
                for j in range(b.shape[1]):
                    c[i, j] += aik * b[k, j]


def _on_core(core, a, b, c, repeats, start, seconds, slot):
    os.sched_setaffinity(0, {core})  # this thread only (Linux: pid 0 is the calling thread)
    start.wait()
    begin = time.perf_counter()
    _work(a, b, c, repeats)
    seconds[slot] = time.perf_counter() - begin


def _timed(core_list, a, b, outs, repeats):
    """Seconds of the work on each core of core_list, all started together."""
    seconds = [0.0] * len(core_list)
    start = threading.Barrier(len(core_list))
    threads = [threading.Thread(target=_on_core,
                                args=(core, a, b, outs[i], repeats, start, seconds, i))
               for i, core in enumerate(core_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seconds


def core_times(rounds=8, repeats=REPEATS):
    """{"cores": [...], "together": [[s per core] per round], "alone": [[...] per round]}."""
    if not hasattr(os, "sched_setaffinity"):
        raise RuntimeError("fastmlp.bench.host needs os.sched_setaffinity (Linux)")
    mine = sorted(os.sched_getaffinity(0))[:cores()]
    rng = np.random.default_rng(0)
    a = rng.random((64, 128), dtype=np.float32)
    b = rng.random((128, 128), dtype=np.float32)
    outs = [np.zeros((64, 128), np.float32) for _ in mine]
    _work(a, b, outs[0], 1)  # compile (or load) outside the timings
    together, alone = [], []
    for _ in range(rounds):  # each round's threads pin themselves; this one stays as it is
        together.append(_timed(mine, a, b, outs, repeats))
        alone.append([_timed([core], a, b, outs[i:i + 1], repeats)[0]
                      for i, core in enumerate(mine)])
    return {"cores": mine, "together": together, "alone": alone}


def steadiness(rounds=8):
    """{"round_spread": the largest slowest/fastest of one core's rounds with every core
    busy, "core_ratio": the largest ratio between two cores in one such round}, or None
    where this cannot be measured (no sched_setaffinity, or one core). What a team of
    threads meets: its step waits for the slower core."""
    if not hasattr(os, "sched_setaffinity") or cores() < 2:
        return None
    try:
        together = core_times(rounds)["together"]
    except OSError:  # a container that forbids pinning a thread: no figure, not a failed run
        return None
    rows = np.array(together)
    return {"round_spread": float((rows.max(axis=0) / rows.min(axis=0)).max()),
            "core_ratio": _core_ratio(together)}


def _core_ratio(together):
    """The largest ratio between two cores' times within one round of `together`."""
    rows = np.array(together)
    return float((rows.max(axis=1) / rows.min(axis=1)).max())


def summary(times):
    """Lines: each core's fastest and slowest round (ms), together and alone, and the largest
    ratio of two cores' times within one round with all of them busy."""
    lines = []
    for mode in ("together", "alone"):
        rows = np.array(times[mode]) * 1e3
        for i, core in enumerate(times["cores"]):
            lines.append(f"cpu{core} {mode:8s} {rows[:, i].min():7.1f} - {rows[:, i].max():7.1f} "
                         f"ms (slowest/fastest {rows[:, i].max() / rows[:, i].min():.2f})")
    lines.append(f"largest ratio between two cores in one round: "
                 f"{_core_ratio(times['together']):.2f}")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(argv[0]) if argv else 8
    times = core_times(rounds)
    for r, (both, each) in enumerate(zip(times["together"], times["alone"])):
        print(f"round {r:2d}: together " + " ".join(f"{s * 1e3:6.1f}" for s in both)
              + " ms | alone " + " ".join(f"{s * 1e3:6.1f}" for s in each) + " ms")
    print("\n".join(summary(times)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
