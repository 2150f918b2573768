"""The CUDA device: availability checks with errors that say what to do, and every device
allocation and host<->device copy of the package (so they can be counted).

Nothing here imports numba.cuda at module import time: `import fastmlp` must work on a
machine without numba-cuda and without a GPU.
"""
import importlib.util
import os

import numpy as np

INSTALL_HINT = ("install NVIDIA's numba-cuda with pip install 'fastmlp[cuda]' (or pip install "
                "numba-cuda)")
SIMULATOR_HINT = ("to run the CUDA kernels on the CPU in Numba's simulator (slow; for tests), "
                  "set NUMBA_ENABLE_CUDASIM=1 in the environment before Python starts")


def cuda_module():
    """numba.cuda from NVIDIA's numba-cuda package, or RuntimeError saying how to get it."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise RuntimeError(f"device='cuda' needs NVIDIA's numba-cuda, which is not installed "
                           f"(numba's built-in CUDA target is deprecated and not used): "
                           f"{INSTALL_HINT}")
    from numba import cuda
    if getattr(cuda, "implementation", None) != "NVIDIA":
        raise RuntimeError(f"numba.cuda is numba's deprecated built-in target, not numba-cuda; "
                           f"{INSTALL_HINT}, in the same environment as numba")
    return cuda


def simulator_enabled():
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def require_cuda():
    """numba.cuda, once a GPU or the simulator is known to be usable; RuntimeError if not."""
    cuda = cuda_module()
    if not cuda.is_available():
        raise RuntimeError(f"device='cuda' but no usable CUDA GPU was found (no driver or no "
                           f"device); use device='cpu', or {SIMULATOR_HINT}")
    return cuda


def gpu_present():
    """A GPU is visible without importing numba (used to decide on the simulator in tests)."""
    if os.path.exists("/dev/nvidia0"):
        return True
    return any(os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep) if d)


# -- allocations and copies: the only places the package touches device memory --------
def zeros(shape, dtype):
    """A new device array of zeros (a device allocation)."""
    return upload(np.zeros(shape, dtype))


def upload(host):
    """A new device array holding a copy of a host array (an allocation and a copy)."""
    return cuda_module().to_device(np.ascontiguousarray(host))


def empty(shape, dtype):
    """A new, uninitialised device array (a device allocation)."""
    return cuda_module().device_array(shape, dtype=np.dtype(dtype))


def fill(array, value):
    """Set every element of a C-contiguous device array to value, on the device."""
    from .elementwise import fill_kernel
    from ..config import CUDA_THREADS
    n = array.size
    if n:
        fill_kernel[-(-n // CUDA_THREADS), CUDA_THREADS](array.reshape(n), value)


def free_bytes():
    """Free device memory in bytes (in the simulator: a nominal 8 GiB)."""
    cuda = cuda_module()
    if simulator_enabled():
        return 8 << 30
    free, _ = cuda.current_context().get_memory_info()
    return int(free)
