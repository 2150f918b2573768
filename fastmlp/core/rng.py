"""The row shuffle every backend uses, so that the CPU and the GPU see the same batches.

splitmix64 (Steele, Lea & Flood 2014): a tiny, well-mixed generator whose whole state is one
uint64 kept in the workspace, so shuffles are reproducible from the model's seed. The CPU
kernels call `shuffle` inside their compiled loop; the CUDA backend calls it on the host once
per epoch and copies the permutation to the device.
"""
import numpy as np

from ..config import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


@jit
def random_u64(rng):
    z = rng[0] + _GOLDEN
    rng[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@jit
def shuffle(perm, rng):
    """In-place Fisher-Yates shuffle of perm (modulo bias < n / 2**64, negligible)."""
    for i in range(perm.shape[0] - 1, 0, -1):
        j = np.int64(random_u64(rng) % np.uint64(i + 1))
        perm[i], perm[j] = perm[j], perm[i]
