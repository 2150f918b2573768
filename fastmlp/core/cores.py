"""The cores this process may use and the memory it can still have, and helper threads that
run a compiled function (one that releases the GIL, as config.jit's do) over parts of an
array at once."""
import os
from concurrent.futures import ThreadPoolExecutor

import numba

from .. import config


def cores():
    """The cores this process may run on (its CPU affinity where the OS reports one), at
    most NUMBA_NUM_THREADS."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    return max(1, min(count, numba.config.NUMBA_NUM_THREADS))


def most_threads():
    """The threads the parallel kernels may use: config.CPU_THREADS (at most the cores), or
    one per core when it is None."""
    limit = config.CPU_THREADS
    return cores() if limit is None else max(1, min(int(limit), cores()))


def available_memory():
    """Bytes of memory a new allocation can have now: MemAvailable of /proc/meminfo (free
    memory plus the page cache the kernel can drop), or all physical memory where there is
    no such file; None where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


#: (the process that made it, its workers, the executor): a forked child makes its own,
#: since the parent's threads do not exist in it.
_pool = None


def _executor(workers):
    global _pool
    if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
        _pool = (os.getpid(), workers,
                 ThreadPoolExecutor(workers, thread_name_prefix="fastmlp-part"))
    return _pool[2]


def map_parts(function, array, parts, *args):
    """[function(part, *args) for each of `parts` contiguous slices of the 1-D array], the
    first in this thread and the others in helper threads at the same time."""
    if parts <= 1:
        return [function(array, *args)]
    step = -(-array.shape[0] // parts)
    pool = _executor(parts - 1)
    futures = [pool.submit(function, array[i * step:(i + 1) * step], *args)
               for i in range(1, parts)]
    first = function(array[:step], *args)
    return [first] + [future.result() for future in futures]
