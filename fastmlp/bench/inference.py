"""Inference rows of `fastmlp bench`: `forward` on INFERENCE_ROWS rows against ONNX Runtime's
CPU session and PyTorch (eager, inference mode), all on the same weights.

The ONNX graph and the torch module are the model's own exports (MLP.to_onnx's graph: Gemm
and the activation per layer; MLP.to_torch); each library runs with its default threads.
Every runner's output is checked against fastmlp's before it is timed, so a wrong graph
cannot post a figure.
"""
import time

import numpy as np

from .workloads import WORKLOADS

INFERENCE_ROWS = 10_000
INFERENCE_WORKLOADS = ("mnist-small", "mnist-wide")


def _best_seconds(call, seconds, repeats):
    """Best time of one call(), each sample repeating it until it lasts >= seconds."""
    call()  # warm up
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        calls = max(calls + 1, int(calls * 1.5 * seconds / max(elapsed, 1e-6)))
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def onnx_session(model):
    """An ONNX Runtime CPU session running `model`'s exported graph (export.onnx_graph)."""
    import onnxruntime
    from ..export import onnx_graph
    return onnxruntime.InferenceSession(onnx_graph(model).SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def inference_rows(names, peers, seconds, repeats, log=print, rows=INFERENCE_ROWS):
    """{workload: {who: {"rows_per_s", "fastmlp_ratio"}}} for the selected inference
    workloads; peers that are not installed are left out with a message."""
    results = {}
    for name in [n for n in names if n in INFERENCE_WORKLOADS]:
        workload = WORKLOADS[name]
        model = workload.build(seed=0)
        X = np.random.default_rng(1).random((rows, workload.n_inputs), dtype=np.float32)
        expected = model.forward(X)
        runners = {"fastmlp": lambda: model.forward(X)}
        if "onnxruntime" in peers:
            try:
                session = onnx_session(model)
                runners["onnxruntime"] = lambda: session.run(None, {"input": X})[0]
            except ImportError:
                log("(onnxruntime not installed: pip install 'fastmlp[peers]' to compare)")
        if "torch" in peers:
            try:
                import torch
                net = model.to_torch()
                X_torch = torch.from_numpy(X)

                def torch_forward():
                    with torch.inference_mode():
                        return net(X_torch).numpy()
                runners["torch"] = torch_forward
            except ImportError:
                pass  # run_bench has said so for the training rows
        row = {}
        for who, call in runners.items():
            np.testing.assert_allclose(call(), expected, rtol=1e-3, atol=1e-5,
                                       err_msg=f"{who} disagrees with fastmlp on {name}")
            row[who] = {"rows_per_s": rows / _best_seconds(call, seconds, repeats)}
        for who in row:
            if who != "fastmlp":
                row[who]["fastmlp_ratio"] = row["fastmlp"]["rows_per_s"] / row[who]["rows_per_s"]
        results[name] = row
    return results
