"""Inference rows of `fastmlp bench`: `forward` on INFERENCE_ROWS rows against ONNX Runtime's
CPU session and PyTorch (eager, inference mode), all on the same weights.

The ONNX graph is built here from the weights with onnx.helper (MatMul, Add and the
activation per layer); each library runs with its default threads. Every runner's output is
checked against fastmlp's before it is timed, so a wrong graph cannot post a figure.
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


def onnx_session(workload, weights):
    """An ONNX Runtime CPU session computing the workload's forward pass with `weights`."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}
    nodes, initializers, name = [], [], "X"
    for l, ((W, b), (_, activation)) in enumerate(zip(weights, workload.layers)):
        initializers += [numpy_helper.from_array(W, f"W{l}"), numpy_helper.from_array(b, f"b{l}")]
        nodes += [helper.make_node("MatMul", [name, f"W{l}"], [f"m{l}"]),
                  helper.make_node("Add", [f"m{l}", f"b{l}"], [f"z{l}"])]
        name = f"z{l}"
        if activation in ops:
            attributes = {"axis": -1} if activation == "softmax" else {}
            nodes.append(helper.make_node(ops[activation], [name], [f"a{l}"], **attributes))
            name = f"a{l}"
    n_out = workload.layers[-1][0]
    graph = helper.make_graph(
        nodes, workload.name, [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                             [None, workload.n_inputs])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, n_out])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    onnx.checker.check_model(model)
    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def torch_module(workload, weights):
    import torch
    acts = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
            "identity": torch.nn.Identity, "softmax": lambda: torch.nn.Softmax(dim=1)}
    modules = []
    for (W, b), (_, activation) in zip(weights, workload.layers):
        linear = torch.nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
        modules += [linear, acts[activation]()]
    return torch.nn.Sequential(*modules).eval()


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
        weights = model.get_weights()
        if "onnxruntime" in peers:
            try:
                session = onnx_session(workload, weights)
                runners["onnxruntime"] = lambda: session.run(None, {"X": X})[0]
            except ImportError:
                log("(onnxruntime not installed: pip install 'fastmlp[peers]' to compare)")
        if "torch" in peers:
            try:
                import torch
                net = torch_module(workload, weights)
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
