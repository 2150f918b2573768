"""Inference speed: forward over a large batch (the workspace runs it in chunks)."""
import numpy as np

from fastmlp.workloads import WORKLOADS

from .common import DEVICES, DTYPES, WORKLOAD_NAMES, WarmKernels, build_model

#: Rows per forward call: several chunks of the workspace (256 rows or the batch size).
PREDICT_ROWS = 2048


def inference_data(workload, rows):
    """`rows` input rows of the workload's shape, in the model's dtype so no copy is timed."""
    X, _ = workload.make_data(n_samples=rows)
    return np.resize(X, (rows, X.shape[1]))  # xor has only its 4 points: repeat them


class Predict(WarmKernels):
    """Seconds for model.forward on PREDICT_ROWS rows."""
    params = (WORKLOAD_NAMES, DTYPES, DEVICES)
    param_names = ["workload", "dtype", "device"]
    repeat = (3, 10, 5.0)

    def setup(self, workload, dtype, device):
        w = WORKLOADS[workload]
        self.model = build_model(w, dtype, device)
        self.X = inference_data(w, PREDICT_ROWS).astype(dtype)
        self.model.forward(self.X[:1])  # load the inference kernel into this process

    def time_predict(self, workload, dtype, device):
        self.model.forward(self.X)
