"""Sample weights in the kernels: the weighted mean sum(w l) / sum(w), its gradients (central
differences, PyTorch), integer weights against repeated rows, a batch of zero weight, the
l2_per_sample convention against scikit-learn's own backprop, and the class-weight helper."""
import numpy as np
import pytest

import fastmlp
from fastmlp.core import losses as L
from fastmlp.core.status import OK
from fastmlp.core.sample_weight import check_sample_weight, class_weights_to_sample_weights
from fastmlp.fit.plan import Objective, plan_for
from tests.runs import start as start_run

TRAINABLE = sorted((loss, out) for loss, outs in L.VALID_OUTPUTS.items()
                   for out in outs if out != "step")
HIDDEN = ["tanh", "relu", "leaky_relu", "sigmoid", "identity"]


def problem(index, loss, out, dtype="float64", n=9, n_inputs=4, k=3, seed=0):
    """A model whose hidden activation rotates with the pair's index, data and weights
    (one of them zero)."""
    rng = np.random.default_rng(seed + index)
    model = fastmlp.MLP(n_inputs, [(6, HIDDEN[index % len(HIDDEN)]), (k, out)], loss=loss,
                        l2=0.03, dtype=dtype, seed=index)
    X = rng.standard_normal((n, n_inputs))
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = rng.random((n, k))
    else:
        y = rng.standard_normal((n, k))
    w = rng.random(n) * 3
    w[2] = 0.0
    Xa, T = model.as_arrays(X, y)
    return model, Xa, T, w


def objective(model, l2_per_sample, l2=None):
    """The model's objective with l2_per_sample (and l2) as given."""
    return Objective(model.loss_code, model.l2 if l2 is None else l2, bool(l2_per_sample))


def numeric_gradient(backend, X, T, objective, w, eps=1e-6):
    params = backend.get_params()
    numeric = np.zeros_like(params)

    def loss():
        backend.set_params(params)
        return backend.loss_rows(X, T, objective, w)

    for i in range(params.shape[0]):
        saved = params[i]
        params[i] = saved + eps
        plus = loss()
        params[i] = saved - eps
        minus = loss()
        params[i] = saved
        numeric[i] = (plus - minus) / (2 * eps)
    backend.set_params(params)
    return numeric


@pytest.mark.parametrize("l2_per_sample", [False, True])
@pytest.mark.parametrize("index,loss,out", [(i, *p) for i, p in enumerate(TRAINABLE)])
def test_weighted_gradients_match_central_differences(index, loss, out, l2_per_sample):
    model, X, T, w = problem(index, loss, out)
    backend = model.backend
    analytic = backend.gradient_rows(X, T, objective(model, l2_per_sample), w)
    numeric = numeric_gradient(backend, X, T, objective(model, l2_per_sample), w)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    assert np.linalg.norm(analytic - numeric) / scale < 1e-7
    # and the weights matter: the unweighted gradient is another one
    plain = backend.gradient_rows(X, T, model.objective)
    assert np.linalg.norm(plain - analytic) / scale > 1e-3


@pytest.mark.parametrize("l2_per_sample", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index,loss,out", [(i, *p) for i, p in enumerate(TRAINABLE)])
def test_weighted_loss_and_gradients_match_torch(index, loss, out, dtype, l2_per_sample):
    torch = pytest.importorskip("torch", reason="the PyTorch cross-checks need: pip install "
                                                "'.[reference]'")
    F = torch.nn.functional
    acts = {"identity": lambda z: z, "relu": torch.relu, "tanh": torch.tanh,
            "sigmoid": torch.sigmoid, "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
            "softmax": lambda z: torch.softmax(z, dim=1)}
    model, X, T, w = problem(index, loss, out, dtype)
    tdtype = getattr(torch, dtype)
    params = [torch.tensor(a, dtype=tdtype, requires_grad=True)
              for pair in model.get_weights() for a in pair]
    A = torch.as_tensor(X)
    for l, (_, act) in enumerate(model.layers):
        Z = A @ params[2 * l] + params[2 * l + 1]
        A = Z if l == len(model.layers) - 1 else acts[act](Z)
    Tt = torch.as_tensor(T)
    if loss == "binary_cross_entropy":
        rows = F.binary_cross_entropy_with_logits(Z, Tt, reduction="none").sum(dim=1)
    elif loss == "cross_entropy":
        rows = F.cross_entropy(Z, Tt, reduction="none")
    else:
        rows = 0.5 * ((acts[out](Z) - Tt) ** 2).sum(dim=1)
    wt = torch.as_tensor(w, dtype=torch.float64)
    value = (wt * rows.double()).sum() / wt.sum()  # the weighted mean, sum(w l) / sum(w)
    l2 = model.l2 / w.sum() if l2_per_sample else model.l2
    value = value + 0.5 * l2 * sum(torch.sum(params[2 * l].double() ** 2)
                                   for l in range(len(model.layers)))
    value.backward()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    got = model.backend.loss_rows(X, T, objective(model, l2_per_sample), w)
    assert got == pytest.approx(value.item(), rel=tol["rtol"] * 10)
    grads = model.backend.gradient_rows(X, T, objective(model, l2_per_sample), w)
    for (dW, db), l in zip(model.spec.pairs(grads), range(len(model.layers))):
        np.testing.assert_allclose(dW, params[2 * l].grad.numpy(), **tol)
        np.testing.assert_allclose(db, params[2 * l + 1].grad.numpy(), **tol)


@pytest.mark.parametrize("l2_per_sample", [False, True])
@pytest.mark.parametrize("index,loss,out", [(i, *p) for i, p in enumerate(TRAINABLE)])
def test_integer_weights_equal_repeated_rows(index, loss, out, l2_per_sample):
    """Loss, gradient and a few full-batch epochs of training: weight k == the row k times."""
    model, X, T, _ = problem(index, loss, out)
    counts = np.array([1, 3, 0, 2, 1, 1, 4, 2, 1])
    Xr, Tr = np.repeat(X, counts, axis=0), np.repeat(T, counts, axis=0)
    b = model.backend
    goal = objective(model, l2_per_sample)
    weights = check_sample_weight(counts, X.shape[0])  # as the model hands them on
    assert b.loss_rows(X, T, goal, weights) == pytest.approx(
        b.loss_rows(Xr, Tr, goal, None), rel=1e-13)
    np.testing.assert_allclose(b.gradient_rows(X, T, goal, weights),
                               b.gradient_rows(Xr, Tr, goal, None),
                               rtol=1e-11, atol=1e-14)
    twin = fastmlp.MLP(model.n_inputs, model.layers, loss=model.loss_name, l2=model.l2,
                       dtype="float64", seed=index)
    for owner, data, weights in ((model, (X, T), counts), (twin, (Xr, Tr), None)):
        n = data[0].shape[0]
        run = start_run(owner, *data, n, True, 5, weights=weights, l2_per_sample=l2_per_sample)
        assert run.train_steps(5) == (OK, 5)
    np.testing.assert_allclose(b.get_params(), twin.backend.get_params(), rtol=1e-10,
                               atol=1e-13)


def test_a_batch_of_zero_weight_is_skipped():
    model, X, T, w = problem(0, "mse", "identity", n=8)
    w[:4] = 0.0  # the first of two unshuffled batches weighs nothing
    b = model.backend
    r = start_run(model, X, T, 4, False, 1, optimizer=fastmlp.SGD(lr=0.1), weights=w)
    before = b.get_state()
    assert r.train_steps(1) == (OK, 1)
    after = b.get_state()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    assert r.epoch_loss[0] == 0 and not r.epoch_grad_norm.any()
    assert r.train_steps(1) == (OK, 1)  # the second batch trains
    assert b.get_state()["opt_step"][0] == 1
    assert not np.array_equal(b.get_params(), before["params"])


def test_weighted_validation_loss():
    model, X, T, w = problem(1, "cross_entropy", "softmax")
    b = model.backend
    r = start_run(model, X, T, 4, True, 1, validation=(X[:5], T[:5], w[:5]),
                  l2_per_sample=True)
    assert r.validation_loss() == b.loss_rows(X[:5], T[:5], objective(model, True), w[:5])
    r = start_run(model, X, T, 4, True, 1, validation=(X[:5], T[:5]))
    assert r.validation_loss() == b.loss_rows(X[:5], T[:5], model.objective)


# -- scikit-learn's convention, from its own code ---------------------------------------
@pytest.mark.parametrize("kind,out", [("MLPRegressor", "identity"),
                                      ("MLPClassifier", "softmax")])
def test_l2_per_sample_is_sklearns_backprop(kind, out):
    """loss_rows and gradient_rows with weights and l2_per_sample equal scikit-learn's
    _backprop (its loss, coef_grads and intercept_grads) on the same weights and data."""
    neural = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(2)
    n, k = 11, (1 if out == "identity" else 3)
    X = rng.standard_normal((n, 4))
    y = rng.standard_normal(n) if k == 1 else rng.integers(0, k, n)
    w = rng.random(n) * 2
    model = fastmlp.MLP(4, [(5, "tanh"), (k, out)], l2=0.3, dtype="float64", seed=1)
    est = getattr(neural, kind)(hidden_layer_sizes=(5,), activation="tanh", alpha=0.3)
    # the state _backprop reads, as _initialize would set it, with model's weights
    est.coefs_ = [W.copy() for W, _ in model.get_weights()]
    est.intercepts_ = [b.copy() for _, b in model.get_weights()]
    est.n_layers_, est.out_activation_ = 3, out
    Xa, T = model.as_arrays(X, y)
    coef_grads = [np.empty_like(c) for c in est.coefs_]
    intercept_grads = [np.empty_like(c) for c in est.intercepts_]
    activations = [X] + [None] * len(est.coefs_)
    Y = T if k > 1 else y.reshape(-1, 1)
    loss, coef_grads, intercept_grads = est._backprop(
        X, Y, w, activations, [None] * len(est.coefs_), coef_grads, intercept_grads)
    b = model.backend
    goal = objective(model, True, l2=0.3)
    assert b.loss_rows(Xa, T, goal, w) == pytest.approx(loss, rel=1e-13)
    grads = model.spec.pairs(b.gradient_rows(Xa, T, goal, w))
    for (dW, db), cW, cb in zip(grads, coef_grads, intercept_grads):
        np.testing.assert_allclose(dW, cW, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(db, cb, rtol=1e-11, atol=1e-14)


# -- the helpers ---------------------------------------------------------------------------
def test_balanced_class_weights_are_sklearns():
    utils = pytest.importorskip("sklearn.utils.class_weight")
    y = np.array(["b", "a", "c", "a", "a", "b", "c", "a"])
    np.testing.assert_allclose(class_weights_to_sample_weights(y, "balanced"),
                               utils.compute_sample_weight("balanced", y), rtol=1e-15)
    np.testing.assert_allclose(class_weights_to_sample_weights(y[:, None], "balanced"),
                               utils.compute_sample_weight("balanced", y), rtol=1e-15)


def test_class_weight_dict_and_none():
    y = np.array([0, 2, 1, 2])
    np.testing.assert_array_equal(class_weights_to_sample_weights(y, {2: 3.0, 0: 0.5}),
                                  [0.5, 3.0, 1.0, 3.0])
    np.testing.assert_array_equal(class_weights_to_sample_weights(y, None), np.ones(4))
    with pytest.raises(ValueError, match="label 7, which is not in y"):
        class_weights_to_sample_weights(y, {7: 1.0})
    with pytest.raises(ValueError, match=r"class_weight\[0\] must be a finite number >= 0"):
        class_weights_to_sample_weights(y, {0: -1.0})
    with pytest.raises(ValueError, match="'balanced' or a dict"):
        class_weights_to_sample_weights(y, "balance")
    with pytest.raises(TypeError, match="'balanced' or a dict"):
        class_weights_to_sample_weights(y, [1.0, 2.0])
    with pytest.raises(ValueError, match="1-D array of class labels"):
        class_weights_to_sample_weights(np.zeros((4, 2)), "balanced")


@pytest.mark.parametrize("bad,match", [
    (np.ones(3), "3 weights for 4 rows"),
    (np.ones((4, 1)), r"shape \(4,\)"),
    (np.array([1.0, np.nan, 1.0, 1.0]), "NaN or infinite"),
    (np.array([1.0, -1.0, 1.0, 1.0]), "negative"),
    (np.zeros(4), "all zero"),
    (np.array(["a"] * 4), "real numbers"),
])
def test_bad_sample_weights_are_refused_before_any_kernel(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_sample_weight(bad, 4)
    model, X, T, _ = problem(0, "mse", "identity", n=4)
    with pytest.raises((ValueError, TypeError), match=match):  # where fit checks them
        plan_for(model, X, T, sample_weight=bad, epochs=1, batch_size=2)
