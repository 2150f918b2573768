"""Property tests of every entry point against inputs of every shape, dtype, layout,
container and value (tests/strategies.py), in the style of PyTorch's OpInfo error_inputs:
each call either works, and then agrees with the float64 numpy reference (tests/reference.py),
or raises ValueError/TypeError (FileNotFoundError for paths) with a message that names the
argument at fault. It must work exactly when the input is valid; any other exception fails.

Profiles (FASTMLP_HYPOTHESIS_PROFILE): "ci" (the default) runs 2,000 examples per test;
"nightly" 10,000 per test (80,000 in all); "dev" 100. Every profile is derandomised, with no
example database, so a run is the same on every machine.
"""
import os
import re
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastmlp
from tests import reference
from tests.strategies import DTYPES, as_model_dtype, choice, dressed, features, targets, values
from tests.strategies_files import (file_cases, file_content, name_verdict, path_cases,
                                    path_problems)

EXAMPLES = {"ci": 2000, "nightly": 10000, "dev": 100}
PROFILE = os.environ.get("FASTMLP_HYPOTHESIS_PROFILE", "ci")
PROPERTY = settings(max_examples=EXAMPLES[PROFILE], derandomize=True, database=None,
                    deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LR = 0.1
# (n_inputs, layers, dtype): one per loss and both dtypes, so few kernels are compiled
ARCHITECTURES = [(3, [(4, "tanh"), (3, "softmax")], "float32"),
                 (2, [(3, "relu"), (1, "sigmoid")], "float64"),
                 (2, [(3, "leaky_relu"), (2, "identity")], "float32")]
TMP = tempfile.mkdtemp(prefix="fastmlp-properties-")
FIT_ARGUMENTS = {
    "epochs": [1] * 6 + [0, 2, np.int64(1), -1, 1.5, True, None, "2"],
    "batch_size": [32] * 4 + [1, 2, 3, np.int32(2), 0, -4, 2.0, False, "8"],
    "shuffle": [True] * 5 + [False, np.bool_(False), 1, "yes", None],
    "progress": [False] * 8 + [0, "no"],
}
VALID_FIT_ARGUMENTS = {"epochs": 0, "batch_size": 1}  # minimum of each integer argument


def make(i, seed=0):
    n_inputs, layers, dtype = ARCHITECTURES[i]
    return fastmlp.MLP(n_inputs, layers, optimizer=fastmlp.SGD(lr=LR), dtype=dtype, seed=seed)


MODELS = [make(i) for i in range(len(ARCHITECTURES))]
MODEL_INDEX = st.integers(0, len(MODELS) - 1)


def weights64(model):
    return [(W.astype(np.float64), b.astype(np.float64)) for W, b in model.get_weights()]


def seen(arg, model):
    """X as the model computes with it: rounded to its dtype, then float64."""
    return arg.array.astype(np.float64).astype(model.dtype).astype(np.float64)


def tolerance(model):
    return 2e-4 if model.dtype == np.float32 else 1e-9


def close(actual, expected, model):
    tol = tolerance(model)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def moderate(*arrays, limit=3.0):
    """Inputs inside the plain range, where outputs are compared with the reference (beyond
    it the float32 and float64 results may both be right and still differ, or overflow)."""
    return all(np.abs(a.astype(np.float64)).max(initial=0) <= limit for a in arrays)


def outcome(call, problems):
    """call()'s result, or None when it raised the ValueError/TypeError that `problems`
    ({argument name: why it is invalid}) call for, naming one of those arguments."""
    problems = {name: why for name, why in problems.items() if why is not None}
    try:
        result = call()
    except (ValueError, TypeError, FileNotFoundError) as exc:
        assert problems, f"a valid input was refused: {type(exc).__name__}: {exc}"
        named = [n for n in problems if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", str(exc))]
        assert named, f"the message does not name any of {sorted(problems)}: {exc}"
        return None
    assert not problems, f"invalid input accepted: {problems}"
    return result


def stable_loss(model, X, T):
    """The loss by its textbook definition, computed from the logits without overflow."""
    Z, A = reference.forward(weights64(model), model.layers, X)[-1]
    if model.loss_name == "cross_entropy":
        top = Z.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(Z - top).sum(axis=1))
        value = np.mean(lse - (T * Z).sum(axis=1))
    elif model.loss_name == "binary_cross_entropy":
        value = np.mean(np.sum(np.maximum(Z, 0) - Z * T + np.log1p(np.exp(-np.abs(Z))), axis=1))
    else:
        value = 0.5 * np.sum((A - T) ** 2) / len(X)
    return value + 0.5 * model.l2 * sum(np.sum(W ** 2) for W, _ in weights64(model))


@st.composite
def data(draw):
    i = draw(MODEL_INDEX)
    model = MODELS[i]
    X = features(draw, model.n_inputs, model.dtype, TMP)
    rows = X.array.shape[0] if X.array.ndim else 1
    y, T = targets(draw, model, max(rows, 1), TMP)
    return i, X, y, T


@st.composite
def inputs(draw):
    i = draw(MODEL_INDEX)
    return i, features(draw, MODELS[i].n_inputs, MODELS[i].dtype, TMP)


@given(inputs())
@PROPERTY
def test_predict(case):
    i, X = case
    model = MODELS[i]
    out = outcome(lambda: model.forward(X.value), {"X": X.problem})
    if out is None:
        return
    assert out.shape == (X.array.shape[0], model.spec.n_outputs) and out.dtype == model.dtype
    if moderate(X.array, limit=1e4):
        close(out, reference.forward(weights64(model), model.layers, seen(X, model))[-1][1],
              model)
    predicted = model.predict(X.value)
    assert len(predicted) == len(out)
    if model.spec.output_activation == "softmax":
        np.testing.assert_array_equal(model.predict_proba(X.value), out)


@given(data())
@PROPERTY
def test_evaluate(case):
    i, X, y, T = case
    model = MODELS[i]
    result = outcome(lambda: model.evaluate(X.value, y.value), {"X": X.problem, "y": y.problem})
    if result is None:
        return
    assert set(result) == ({"loss", "accuracy"} if model.is_classifier else {"loss"})
    if moderate(X.array):
        close(result["loss"], stable_loss(model, seen(X, model), T), model)


@given(data())
@PROPERTY
def test_gradients(case):
    i, X, y, T = case
    model = MODELS[i]
    grads = outcome(lambda: model.gradients(X.value, y.value), {"X": X.problem, "y": y.problem})
    if grads is None:
        return
    if moderate(X.array):
        expect = reference.gradients(weights64(model), model.layers, seen(X, model), T,
                                     model.loss_name, model.l2)
        for (dW, db), (eW, eb) in zip(grads, expect):
            close(dW, eW, model)
            close(db, eb, model)


@given(data(), st.fixed_dictionaries({k: st.sampled_from(v) for k, v in FIT_ARGUMENTS.items()}),
       st.integers(0, 4))
@PROPERTY
def test_fit(case, arguments, validation):
    i, X, y, T = case
    model = make(i, seed=i)
    before = weights64(model)
    problems = {"X": X.problem, "y": y.problem}
    for name, value in arguments.items():
        valid = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                 and value >= VALID_FIT_ARGUMENTS[name]) if name in VALID_FIT_ARGUMENTS \
            else isinstance(value, (bool, np.bool_))
        valid = valid or (name == "epochs" and value is None)  # the optimizer's default
        problems[name] = None if valid else "invalid"
    kwargs = dict(arguments)
    if validation == 0:  # the training data again, as validation data
        kwargs["validation_data"] = (X.value, y.value)
        problems["validation"] = X.problem or y.problem
    elif validation == 1:
        kwargs["validation_data"] = X.value  # a pair only if X has two rows: then a bad one
        problems["validation_data"] = problems["validation"] = "not a pair"
    try:
        history = outcome(lambda: model.fit(X.value, y.value, **kwargs), problems)
    except FloatingPointError as exc:  # the documented stop on a NaN/inf loss
        assert not moderate(X.array, y.array), exc
        return
    if history is None:  # refused before training: nothing changed
        for (W, b), (W0, b0) in zip(weights64(model), before):
            np.testing.assert_array_equal(W, W0)
            np.testing.assert_array_equal(b, b0)
        return
    epochs = 1 if arguments["epochs"] is None else int(arguments["epochs"])  # SGD: None is 1
    assert len(history.loss) == epochs and np.isfinite(history.loss).all()
    assert history.grad_norms.shape == (epochs, len(model.layers))
    assert len(history.val_loss) == (epochs if validation == 0 else 0)
    rows = X.array.shape[0]
    if epochs == 1 and arguments["batch_size"] >= rows and moderate(X.array, y.array):
        grads = reference.gradients(before, model.layers, seen(X, model), T, model.loss_name)
        for (W, b), (W0, b0), (dW, db) in zip(model.get_weights(), before, grads):
            close(W, W0 - LR * dW, model)
            close(b, b0 - LR * db, model)


@st.composite
def weight_lists(draw):
    """(i, argument for set_weights, {name: problem}, expected weights or None)."""
    i = draw(MODEL_INDEX)
    model = MODELS[i]
    problems, pairs, expected = {}, [], []
    for l, layer in enumerate(model.spec.layers):
        pair = []
        for part, shape in (("W", (layer.n_in, layer.n_out)), ("b", (layer.n_out,))):
            drawn_shape = draw(choice(tuple([shape] * 6 + [shape[::-1], shape + (1,),
                                                           (layer.n_out + 1,)])))
            value, arr, problem = dressed(draw, values(draw, drawn_shape), TMP,
                                          dtypes=SET_WEIGHTS_DTYPES)
            if problem is None and arr.shape != shape:
                problem = "shape"
            if problem is None:
                converted = as_model_dtype(arr, model.dtype)
                problem = None if np.isfinite(converted).all() else "not finite"
                expected.append(converted)
            problems[f"layer {l}"] = problems.get(f"layer {l}") or problem
            pair.append(value)
        pairs.append(draw(choice((tuple, list)))(pair))
    shape = draw(choice(("list",) * 6 + ("tuple", "short", "long", "None", "str", "triple")))
    if shape == "tuple":
        pairs = tuple(pairs)
    elif shape in ("short", "long", "None", "str", "triple"):
        problems["set_weights"] = shape
        pairs = {"short": pairs[:-1], "long": pairs + pairs[:1], "None": None, "str": "W, b",
                 "triple": [(*p, p[-1]) for p in pairs]}[shape]
        if shape == "triple":
            problems["layer 0"] = "triple"
    valid = not any(problems.values())
    return i, pairs, problems, (expected if valid else None)


WEIGHTS_MODELS = [make(i) for i in range(len(ARCHITECTURES))]  # the models set_weights changes
# Masked arrays and object arrays of numbers, which fit reads, are left out here:
# MLP.set_weights reads its arrays with np.asarray (see test_set_weights_reads_like_fit).
SET_WEIGHTS_DTYPES = [d for d in DTYPES if d != "O"]


@given(weight_lists())
@PROPERTY
def test_set_weights(case):
    i, pairs, problems, expected = case
    model = WEIGHTS_MODELS[i]
    if any(isinstance(w, np.ma.MaskedArray) for p in (pairs or []) if isinstance(p, (list, tuple))
           for w in p):
        return  # see test_set_weights_reads_like_fit
    before = weights64(model)
    if outcome(lambda: model.set_weights(pairs), problems) is None and expected is None:
        for (W, b), (W0, b0) in zip(weights64(model), before):
            np.testing.assert_array_equal(W, W0)
            np.testing.assert_array_equal(b, b0)
        return
    got = [w for pair in model.get_weights() for w in pair]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_set_weights_reads_like_fit():
    model = make(1)
    (W, b), rest = model.get_weights()[0], model.get_weights()[1:]
    masked = np.ma.masked_array(W, mask=np.ones_like(W, bool))
    with pytest.raises(ValueError, match="masked"):
        model.set_weights([(masked, b), *rest])
    model.set_weights([(W.astype(object), b), *rest])


# -- save and load ----------------------------------------------------------------------------

PATHS = path_cases(Path(TMP) / "files")
GOOD_FILES, SPOILED_FILES = file_cases(
    [model.save(Path(TMP) / f"model{i}.npz") for i, model in enumerate(MODELS)])
NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)


@given(st.one_of(st.sampled_from(PATHS), NAMES.map(lambda name: name_verdict(Path(TMP) / "files", name))), MODEL_INDEX)
@PROPERTY
def test_save(case, i):
    path, problem = case
    model = MODELS[i]
    # fsync is what makes a save slow here; what it is for is tested in test_io/test_faults
    with mock.patch.object(os, "fsync", lambda fd: None):
        written = outcome(lambda: model.save(path), path_problems(path, problem))
    if written is None:
        return
    loaded = fastmlp.MLP.load(written)
    assert loaded.layers == model.layers and loaded.dtype == model.dtype
    for a, b in zip(weights64(loaded), weights64(model)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@st.composite
def model_files(draw):
    i = draw(MODEL_INDEX)
    return (i, *file_content(draw, GOOD_FILES[i], SPOILED_FILES))


@given(model_files(), st.sampled_from(["f.npz", "f", "missing.npz", "dir.npz", "dir/"]))
@PROPERTY
def test_load(case, name):
    i, content, damage = case
    root = Path(TMP) / "load"
    (root / "dir.npz").mkdir(parents=True, exist_ok=True)
    (root / "f.npz").write_bytes(content)
    path = str(root / name)
    problem = damage if name in ("f.npz", "f") else "path"
    if problem == "flipped":  # a flipped timestamp or padding byte may change nothing, and
        # then the file loads as the model itself
        try:
            loaded = fastmlp.MLP.load(path)
        except ValueError as exc:
            assert str(root / "f.npz") in str(exc), exc
            return
    else:
        loaded = outcome(lambda: fastmlp.MLP.load(path), path_problems(path, problem))
    if loaded is None:
        return
    assert damage in (None, "flipped"), f"a spoiled file ({damage}) loaded"
    model = MODELS[i]
    assert loaded.layers == model.layers and loaded.loss_name == model.loss_name
    for a, b in zip(weights64(loaded), weights64(model)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
