"""Inference speed: forward over a large batch (the workspace runs it in chunks)."""
import numpy as np

from fastmlp.bench.workloads import WORKLOADS

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


class ForwardVsPeers(WarmKernels):
    """Seconds for forward on 10,000 rows of mnist-small and mnist-wide, by fastmlp, an ONNX
    Runtime CPU session and PyTorch (eager), all on the same weights (float32, each library's
    default threads). A peer that is not installed in the environment is skipped; asv's
    virtualenvs install neither unless asv.conf.json's matrix adds them, `--python=same` uses
    whatever the current environment has (the `peers` extra)."""
    params = (["mnist-small", "mnist-wide"], ["fastmlp", "onnxruntime", "torch"])
    param_names = ["workload", "library"]
    repeat = (3, 10, 5.0)

    def setup(self, workload, library):
        try:
            from fastmlp.bench.inference import INFERENCE_ROWS, onnx_session
        except ImportError as exc:  # a commit from before the inference bench
            raise NotImplementedError(f"no bench_inference in this commit: {exc}") from exc
        w = WORKLOADS[workload]
        model = build_model(w)
        X = inference_data(w, INFERENCE_ROWS)
        if library == "fastmlp":
            self.call = lambda: model.forward(X)
        elif library == "onnxruntime":
            try:
                session = onnx_session(model)
            except ImportError as exc:
                raise NotImplementedError(f"onnxruntime is not installed: {exc}") from exc
            self.call = lambda: session.run(None, {"input": X})
        else:
            try:
                import torch
            except ImportError as exc:
                raise NotImplementedError(f"torch is not installed: {exc}") from exc
            net, X_torch = model.to_torch(), torch.from_numpy(X)

            def forward():
                with torch.inference_mode():
                    return net(X_torch)
            self.call = forward
        self.call()  # load kernels, let the session plan its buffers

    def time_forward(self, workload, library):
        self.call()
