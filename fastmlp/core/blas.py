"""The BLAS library's threads while fastmlp's kernels call it (threadpoolctl, a dependency of
scikit-learn).

numba's np.dot calls scipy's OpenBLAS, which a kernel loads when it is first compiled or
read from numba's cache: a limit set before that would miss it, so the library is loaded
before the controller (made once) looks for the loaded libraries.
"""
import contextlib
import importlib

_controller = None


@contextlib.contextmanager
def limit_threads(limit):
    """The BLAS libraries at `limit` threads for the duration of the block; None leaves them
    alone."""
    global _controller
    if limit is None:
        yield
        return
    if _controller is None:
        importlib.import_module("scipy.linalg.cython_blas")
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    with _controller.limit(limits=limit, user_api="blas"):
        yield
