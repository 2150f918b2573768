"""Gradients and optimizer trajectories equal PyTorch autograd + torch.optim.

CI installs torch (the `reference` extra), so these run there; without torch they skip with
the reason shown, for a machine that has not installed the extra.
"""
import numpy as np
import pytest

import fastmlp

torch = pytest.importorskip("torch", reason="the PyTorch cross-checks need: pip install "
                                             "'.[reference]'")
F = torch.nn.functional

TORCH_ACT = {"identity": lambda z: z, "relu": torch.relu, "tanh": torch.tanh,
             "sigmoid": torch.sigmoid, "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
             "softmax": lambda z: torch.softmax(z, dim=1)}
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}


def torch_params(model):
    tdtype = getattr(torch, model.dtype.name)
    params = []
    for W, b in model.get_weights():
        params += [torch.tensor(W, dtype=tdtype, requires_grad=True),
                   torch.tensor(b, dtype=tdtype, requires_grad=True)]
    return params


def torch_loss(model, params, X, T):
    """The loss definitions of fastmlp.core.losses written with torch ops, over the (W, b) list
    `params`."""
    A = torch.as_tensor(X, dtype=params[0].dtype)
    T = torch.as_tensor(T, dtype=params[0].dtype)
    n = len(model.layers)
    for l, (_, act) in enumerate(model.layers):
        Z = A @ params[2 * l] + params[2 * l + 1]
        A = Z if l == n - 1 else TORCH_ACT[act](Z)
    m = X.shape[0]
    out = model.layers[-1][1]
    if model.loss_name == "binary_cross_entropy":
        value = F.binary_cross_entropy_with_logits(Z, T, reduction="sum") / m
    elif model.loss_name == "cross_entropy":
        value = F.cross_entropy(Z, T, reduction="sum") / m  # T as probabilities
    else:
        value = 0.5 * torch.sum((TORCH_ACT[out](Z) - T) ** 2) / m
    return value + 0.5 * model.l2 * sum(torch.sum(params[2 * l] ** 2) for l in range(n))


CASES = [
    ([(7, "relu"), (3, "softmax")], None),
    ([(6, "tanh"), (5, "leaky_relu"), (2, "sigmoid")], None),
    ([(40, "relu"), (35, "sigmoid"), (1, "identity")], None),   # BLAS-sized layers
    ([(5, "sigmoid"), (1, "sigmoid")], "mse"),                  # the seeds' pairing
    ([(4, "relu"), (3, "softmax")], "mse"),
    ([(4, "leaky_relu"), (2, "tanh")], "mse"),
]


def data(model, rng, m):
    X = rng.standard_normal((m, model.n_inputs))
    k = model.layers[-1][0]
    if model.loss_name == "cross_entropy":
        y = rng.integers(0, k, m)
    elif model.loss_name == "binary_cross_entropy":
        y = rng.integers(0, 2, (m, k)).astype(float)
    else:
        y = rng.standard_normal((m, k))
    return X, y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers,loss", CASES)
def test_loss_and_gradients_match_autograd(layers, loss, dtype):
    rng = np.random.default_rng(3)
    model = fastmlp.MLP(36, layers, loss=loss, l2=0.05, dtype=dtype, seed=4)
    X, y = data(model, rng, 45)
    T = model.as_arrays(np.zeros((45, model.n_inputs)), y)[1]
    params = torch_params(model)
    value = torch_loss(model, params, model.as_arrays(X), T)
    value.backward()
    assert model.loss(X, y) == pytest.approx(value.item(), rel=TOL[dtype]["rtol"] * 10)
    for (dW, db), l in zip(model.gradients(X, y), range(len(layers))):
        np.testing.assert_allclose(dW, params[2 * l].grad.numpy(), **TOL[dtype])
        np.testing.assert_allclose(db, params[2 * l + 1].grad.numpy(), **TOL[dtype])


OPTIMIZERS = [
    (fastmlp.SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    (fastmlp.SGD(lr=0.05, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (fastmlp.SGD(lr=0.05, momentum=0.8, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    (fastmlp.Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    (fastmlp.Adam(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6),
     lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    (fastmlp.AdamW(lr=0.01, weight_decay=0.1),
     lambda p: torch.optim.AdamW([{"params": p[0::2], "weight_decay": 0.1},
                                  {"params": p[1::2], "weight_decay": 0.0}], lr=0.01)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer,make_torch", OPTIMIZERS,
                         ids=["sgd", "momentum", "nesterov", "adam", "adam-betas", "adamw"])
@pytest.mark.parametrize("layers,loss", [CASES[0], CASES[2], CASES[3]])
def test_optimizer_steps_match_torch(layers, loss, optimizer, make_torch, dtype):
    """12 minibatch steps (3 batches of 4, 4 and 2 rows, 4 epochs, no shuffle) vs torch."""
    rng = np.random.default_rng(5)
    model = fastmlp.MLP(36, layers, loss=loss, optimizer=optimizer, l2=0.01, dtype=dtype,
                        seed=6)
    X, y = data(model, rng, 10)
    Xc, T = model.as_arrays(X, y)
    params = torch_params(model)
    opt = make_torch(params)
    for _ in range(4):
        for start in (0, 4, 8):
            opt.zero_grad()
            torch_loss(model, params, Xc[start:start + 4], T[start:start + 4]).backward()
            opt.step()
    model.fit(X, y, epochs=4, batch_size=4, shuffle=False, progress=False)
    for (W, b), l in zip(model.get_weights(), range(len(layers))):
        np.testing.assert_allclose(W, params[2 * l].detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(b, params[2 * l + 1].detach().numpy(), **TOL[dtype])
