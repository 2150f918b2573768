"""Inference speed: forward over a large batch (the workspace runs it in chunks)."""
import time

from .common import COMPILE_TIMEOUT, SUITE_VERSION, WORKLOAD_NAMES, WORKLOADS, best_of, \
    make_data, warm_model

#: Rows per forward call: ~10-100 ms of one core for each network.
ROWS = {"xor": 1 << 20, "x2": 1 << 18, "mnist-small": 1 << 14, "mnist-wide": 1 << 11}


class Predict:
    """CPU seconds for model.forward on ROWS[workload] rows (float32, one thread;
    rows/s = rows / the figure)."""
    params = WORKLOAD_NAMES
    param_names = ["workload"]
    version = SUITE_VERSION
    timer = time.process_time
    repeat = (5, 10, 10.0)
    timeout = COMPILE_TIMEOUT  # the first setup in a new environment compiles

    def setup(self, workload):
        w = WORKLOADS[workload]
        self.model = warm_model(w)
        self.X, _ = make_data(w, rows=ROWS[workload])
        self.model.forward(self.X[:1])  # load the inference kernel into this process

    def time_forward(self, workload):
        self.model.forward(self.X)

    def track_row_ns(self, workload):
        """Nanoseconds per row of forward: the fastest of several timed calls
        (common.best_of), in one unit for every workload."""
        return 1e9 * best_of(lambda: self.time_forward(workload)) / ROWS[workload]

    track_row_ns.unit = "ns/row"
