"""Cold start: a fresh interpreter that imports fastmlp and trains one step, kernels cached."""
import os

from .common import WarmKernels

IMPORT = "import fastmlp"

FIRST_STEP = """
import fastmlp
from fastmlp.workloads import WORKLOADS
w = WORKLOADS["xor"]
X, y = w.make_data()
w.build(seed=0).fit(X, y, epochs=1, batch_size=w.batch_size, progress=False)
"""


def with_this_fastmlp(code):
    """code, made to import the fastmlp this process imported: the timed interpreter does
    not inherit sys.path, and asv may have put a checkout first on it (ASV_PYTHONPATH)."""
    import fastmlp
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    return f"import sys; sys.path.insert(0, {root!r})\n{code}"


class ColdStart(WarmKernels):
    """Seconds the code takes in a new Python process (asv times it there with timeit, so the
    interpreter's own start-up is excluded). Numba's on-disk cache is warm (setup_cache, then
    setup), so this measures importing and loading kernels, not compiling them."""
    repeat = (3, 5, 30.0)

    def setup(self):
        exec(FIRST_STEP, {})  # make sure this fastmlp's kernel cache is populated

    def timeraw_import(self):
        return with_this_fastmlp(IMPORT)

    def timeraw_import_and_first_step(self):
        return with_this_fastmlp(FIRST_STEP)
