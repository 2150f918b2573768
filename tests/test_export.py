"""ONNX and PyTorch export: ONNX Runtime and torch give model.forward's outputs."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import export

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]
OUTPUTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]


def random_net(hidden, output, seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 9))
    layers = [(int(rng.integers(1, 12)), hidden), (int(rng.integers(1, 12)), hidden),
              (int(rng.integers(2, 6)), output)]
    model = fastmlp.MLP(n_in, layers, dtype=dtype, seed=seed)
    # Weights larger than the init's, so every activation works outside its linear part.
    model.set_weights([(3 * W, rng.standard_normal(b.shape)) for W, b in model.get_weights()])
    X = rng.standard_normal((50, n_in)).astype(dtype)
    return model, X


CASES = [(h, o) for h in HIDDEN for o in OUTPUTS]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_runtime_matches_forward(tmp_path, dtype):
    pytest.importorskip("onnx", reason="pip install 'fastmlp[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="pip install 'fastmlp[onnx]'")
    if dtype == "float64" and not _ort_has_double_leaky_relu(ort):
        pytest.skip("this onnxruntime has no float64 LeakyRelu kernel")
    for seed, (hidden, output) in enumerate(CASES):
        model, X = random_net(hidden, output, seed, dtype)
        path = export.to_onnx(model, tmp_path / f"m{seed}.onnx")
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = session.run(["output"], {"input": X})[0]
        assert got.dtype == model.dtype
        np.testing.assert_allclose(got, model.forward(X), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{hidden} hidden, {output} output")


def _ort_has_double_leaky_relu(ort):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.01)], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    try:
        ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def test_onnx_graph_is_gemm_and_activation_nodes():
    pytest.importorskip("onnx", reason="pip install 'fastmlp[onnx]'")
    model = fastmlp.MLP(4, [(8, "leaky_relu"), (3, "identity"), (2, "softmax")], seed=0)
    graph = export.onnx_graph(model).graph
    assert [n.op_type for n in graph.node] == ["Gemm", "LeakyRelu", "Gemm", "Gemm", "Softmax",
                                               "Identity"]
    leaky = graph.node[1].attribute[0]
    assert leaky.name == "alpha" and leaky.f == pytest.approx(0.01)
    assert graph.node[4].attribute[0].i == -1


def test_step_is_refused(tmp_path):
    model = fastmlp.MLP(2, [(2, "step"), (1, "step")])
    with pytest.raises(ValueError, match="layer 0 uses 'step'.*ONNX"):
        export.to_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="layer 0 uses 'step'.*PyTorch"):
        export.to_torch(model)
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    pytest.importorskip("onnx", reason="pip install 'fastmlp[onnx]'")
    from fastmlp.files import umask
    path = export.to_onnx(fastmlp.MLP(2, [(1, "sigmoid")]), tmp_path / "m.onnx")
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask()  # as open() makes, not 0600
    assert os.listdir(tmp_path) == ["m.onnx"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_matches_forward(dtype):
    torch = pytest.importorskip("torch")
    for seed, (hidden, output) in enumerate(CASES):
        model, X = random_net(hidden, output, seed, dtype)
        module = export.to_torch(model)
        with torch.no_grad():
            got = module(torch.from_numpy(X)).numpy()
        assert got.dtype == model.dtype
        np.testing.assert_allclose(got, model.forward(X), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{hidden} hidden, {output} output")


def test_from_torch_inverts_to_torch():
    torch = pytest.importorskip("torch")
    for seed, (hidden, output) in enumerate(CASES):
        model, X = random_net(hidden, output, seed)
        back = fastmlp.MLP.from_torch(export.to_torch(model), loss="mse")
        assert back.layers == model.layers and back.n_inputs == model.n_inputs
        for (W1, b1), (W2, b2) in zip(model.get_weights(), back.get_weights()):
            np.testing.assert_array_equal(W1, W2)
            np.testing.assert_array_equal(b1, b2)


def test_from_torch_reads_a_hand_built_module():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 7, bias=False), nn.Tanh(), nn.Identity(),
                           nn.Sequential(nn.Linear(7, 6), nn.Linear(6, 3)),
                           nn.Softmax(dim=1)).double()
    model = fastmlp.MLP.from_torch(module, seed=1)
    assert model.layers == [(7, "tanh"), (6, "identity"), (3, "softmax")]
    assert model.dtype == np.float64 and model.loss_name == "cross_entropy"
    X = np.random.default_rng(0).standard_normal((10, 5))
    with torch.no_grad():
        np.testing.assert_allclose(model.forward(X), module(torch.from_numpy(X)).numpy(),
                                   rtol=1e-12)


@pytest.mark.parametrize("build,message", [
    (lambda nn: nn.Sequential(nn.Linear(2, 3), nn.Dropout(), nn.Linear(3, 1)),
     "module 1 is Dropout, which fastmlp cannot represent"),
    (lambda nn: nn.Sequential(nn.ReLU(), nn.Linear(2, 1)), "must follow a Linear"),
    (lambda nn: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.ReLU()), "must follow a Linear"),
    (lambda nn: nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1)), "takes 4 inputs but"),
    (lambda nn: nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.2)), "slope 0.01 only"),
    (lambda nn: nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=0)), "dim=-1 or 1"),
    (lambda nn: nn.Sequential(nn.ReLU()), "must follow a Linear"),
    (lambda nn: nn.Sequential(), "no Linear layer"),
])
def test_from_torch_errors(build, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=message):
        fastmlp.MLP.from_torch(build(torch.nn))


def test_from_torch_argument_errors():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="takes a torch.nn.Sequential"):
        fastmlp.MLP.from_torch([1, 2])
    with pytest.raises(TypeError, match="takes layers from the module"):
        fastmlp.MLP.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 1)), layers=[(1, "relu")])


def test_saved_torch_program_loads_and_matches(tmp_path):
    torch = pytest.importorskip("torch")
    model, X = random_net("relu", "softmax", 3)
    path = export.save_torch(model, tmp_path / "m.pt2")
    module = torch.export.load(path).module()
    got = module(torch.from_numpy(X[:1])).detach().numpy()  # a batch size not exported with
    np.testing.assert_allclose(got, model.forward(X[:1]), rtol=1e-5, atol=1e-6)
