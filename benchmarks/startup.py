"""Cold start: a fresh interpreter that imports fastmlp and trains one step, kernels cached."""
from .common import WarmKernels

IMPORT = "import fastmlp"

FIRST_STEP = """
import fastmlp
from fastmlp.workloads import WORKLOADS
w = WORKLOADS["xor"]
X, y = w.make_data()
w.build(seed=0).fit(X, y, epochs=1, batch_size=w.batch_size, progress=False)
"""


class ColdStart(WarmKernels):
    """Seconds the code takes in a new Python process (asv times it there with timeit, so the
    interpreter's own start-up is excluded). Numba's on-disk cache is warm (setup_cache, then
    setup), so this measures importing and loading kernels, not compiling them."""
    repeat = (3, 5, 30.0)

    def setup(self):
        exec(FIRST_STEP, {})  # make sure this environment's kernel cache is populated

    def timeraw_import(self):
        return IMPORT

    def timeraw_import_and_first_step(self):
        return FIRST_STEP
