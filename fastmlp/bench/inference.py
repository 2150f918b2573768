"""Inference rows of `fastmlp bench`: `forward` on INFERENCE_ROWS rows against ONNX Runtime's
CPU session and PyTorch (eager, inference mode), all on the same weights, each library in
fresh processes of its own (isolated.py) unless told otherwise.

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


def _case(name, rows):
    """(model, X) of an inference workload: the same weights and rows in every process."""
    workload = WORKLOADS[name]
    model = workload.build(seed=0)
    X = np.random.default_rng(1).random((rows, workload.n_inputs), dtype=np.float32)
    return model, X


def runner(who, model, X):
    """A no-argument call running `who`'s forward of model on X (ImportError when that
    library is not installed)."""
    if who == "fastmlp":
        return lambda: model.forward(X)
    if who == "onnxruntime":
        session = onnx_session(model)
        return lambda: session.run(None, {"input": X})[0]
    if who == "torch":
        import torch
        net = model.to_torch()
        X_torch = torch.from_numpy(X)

        def torch_forward():
            with torch.inference_mode():
                return net(X_torch).numpy()
        return torch_forward
    raise ValueError(f"unknown inference runner {who!r}")


def forward_rate(who, name, seconds, repeats, rows=INFERENCE_ROWS, out=None):
    """rows/s of `who`'s forward on workload `name` in this process, best of `repeats`
    samples; out: a .npy path to save its output to (for the caller's check)."""
    model, X = _case(name, rows)
    call = runner(who, model, X)
    if out is not None:
        np.save(out, call())
    return rows / _best_seconds(call, seconds, repeats)


def inference_rows(names, peers, seconds, repeats, log=print, rows=INFERENCE_ROWS,
                   timed=None):
    """{workload: {who: {"rows_per_s", "fastmlp_ratio"}}} for the selected inference
    workloads; peers that are not installed are left out with a message. timed(workload,
    libraries, seconds, repeats, rows) -> ({who: rows/s}, {who: output}) times them
    (isolated.isolated_forward: each library in fresh processes of its own, alternated);
    None: all in this process. Either way every output is checked against fastmlp's
    before its figure counts."""
    import importlib.util
    results = {}
    whos = ["fastmlp"]
    for who in ("onnxruntime", "torch"):
        if who not in peers:
            continue
        if importlib.util.find_spec(who) is not None:
            whos.append(who)
        elif who == "onnxruntime":  # run_bench has said so for torch, a training peer
            log("(onnxruntime not installed: pip install 'fastmlp[peers]' to compare)")
    for name in [n for n in names if n in INFERENCE_WORKLOADS]:
        model, X = _case(name, rows)
        expected = model.forward(X)
        if timed is not None:
            rates, outputs = timed(name, whos, seconds, repeats, rows)
        else:
            rates, outputs = {}, {}
            for who in whos:
                call = runner(who, model, X)
                outputs[who] = call()
                rates[who] = rows / _best_seconds(call, seconds, repeats)
        row = {}
        for who, rate in rates.items():
            np.testing.assert_allclose(outputs[who], expected, rtol=1e-3, atol=1e-5,
                                       err_msg=f"{who} disagrees with fastmlp on {name}")
            row[who] = {"rows_per_s": rate}
        for who in row:
            if who != "fastmlp":
                row[who]["fastmlp_ratio"] = row["fastmlp"]["rows_per_s"] / row[who]["rows_per_s"]
        results[name] = row
    return results
