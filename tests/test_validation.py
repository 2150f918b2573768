"""Bad input gets a clear ValueError/TypeError before any compiled code runs."""
import threading
import time

import numpy as np
import pytest

import fastmlp
from fastmlp.cpu import steps as cpu_steps


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail loudly if a compiled training or inference kernel is reached."""
    def boom(*args, **kwargs):
        raise AssertionError("compiled code ran before the input was checked")
    for name in ("train_steps", "forward_rows", "evaluate_rows", "gradient_rows"):
        monkeypatch.setattr(cpu_steps, name, boom)


@pytest.fixture
def clf():
    return fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0)


X3 = np.zeros((5, 3))
LABELS = np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize("X,y,error,match", [
    (np.zeros(5), LABELS, ValueError, "2-D"),
    (np.zeros((5, 3, 1)), LABELS, ValueError, "2-D"),
    (np.zeros((5, 4)), LABELS, ValueError, "4 features but the model takes n_inputs=3"),
    (X3, LABELS[:4], ValueError, "4 samples but X has 5"),
    (np.zeros((0, 3)), LABELS[:0], ValueError, "empty"),
    (np.where(np.eye(5, 3) > 0, np.nan, 0), LABELS, ValueError, "NaN or infinite"),
    (np.full((5, 3), np.inf), LABELS, ValueError, "NaN or infinite"),
    (X3, np.array([0, 1, 2, 3, 0]), ValueError, r"labels must be in \[0, 2\]"),
    (X3, np.array([0, 1, -1, 1, 2]), ValueError, r"labels must be in \[0, 2\] or be exactly 3"),
    (X3, np.array([0, 1.5, 2, 1, 0]), ValueError, "integer class labels"),
    (X3, np.array([0, 1, np.nan, 1, 0]), ValueError, "NaN"),
    (X3.astype(complex), LABELS, TypeError, "complex"),
    (np.array([["a", "b", "c"]] * 5), LABELS, TypeError, "not numeric"),
    (X3, LABELS.astype(complex), TypeError, "complex"),
    # text labels are class labels (MLP.classes_), one per output unit
    (X3, np.array(["a"] * 5), ValueError, r"exactly 3 distinct labels.*got 1"),
    ([[1, 2], [3]], LABELS, TypeError, "numeric array"),
    (None, LABELS, TypeError, "None"),
    (np.full((5, 3), 1e300), LABELS, ValueError, "after conversion to float32"),
])
def test_bad_data(no_kernels, clf, X, y, error, match):
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    with pytest.raises(error, match=match):
        clf.evaluate(X, y)


def test_bad_targets_for_bce_and_mse(no_kernels):
    model = fastmlp.MLP(3, [(2, "sigmoid")])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        model.fit(X3, np.full((5, 2), 1.5))
    with pytest.raises(ValueError, match="1-D but the model has 2 outputs"):
        model.fit(X3, np.zeros(5))
    reg = fastmlp.MLP(3, [(2, "identity")])
    with pytest.raises(ValueError, match="3 columns but the model has 2"):
        reg.fit(X3, np.zeros((5, 3)))
    clf = fastmlp.MLP(3, [(3, "softmax")])
    with pytest.raises(ValueError, match="summing to 1"):
        clf.fit(X3, np.ones((5, 3)))


def test_bad_inference_input(no_kernels, clf):
    for call in (clf.predict, clf.forward, clf.predict_proba):
        with pytest.raises(ValueError, match="features"):
            call(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="predict_proba needs a sigmoid or softmax"):
        fastmlp.MLP(3, [(1, "identity")]).predict_proba(X3)


def test_nan_in_a_forward_is_refused_without_waiting_for_the_model(clf):
    """The check comes before the model's lock: a predict with NaN while another thread
    holds the model (its fit) is refused at once, not after that fit."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with clf._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        start = time.perf_counter()
        for call in (clf.predict, clf.forward):
            with pytest.raises(ValueError, match="X contains 3 NaN or infinite value"):
                call(np.full((1, 3), np.nan))
        assert time.perf_counter() - start < 5
    finally:
        release.set()
        holder.join()


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(layers=[]), ValueError, "layers is empty"),
    (dict(layers=[(4, "swish"), (1, "sigmoid")]), ValueError,
     "unknown activation 'swish'; choose one of identity, leaky_relu, relu"),
    (dict(layers=[(4, "softmax"), (1, "sigmoid")]), ValueError, "only on the output layer"),
    (dict(layers=[(0, "relu"), (1, "sigmoid")]), ValueError, "at least 1"),
    (dict(layers=[(2.5, "relu"), (1, "sigmoid")]), TypeError, "positive integer"),
    (dict(layers=[(4,)]), TypeError, r"\(size, activation\) pair"),
    (dict(layers="relu"), TypeError, "list of"),
    (dict(n_inputs=0), ValueError, "n_inputs must be at least 1"),
    (dict(loss="hinge"), ValueError, "unknown loss 'hinge'; choose one of"),
    (dict(loss="cross_entropy"), ValueError, "needs a softmax output layer"),
    (dict(optimizer="rmsprop"), ValueError, "unknown optimizer 'rmsprop'; choose one of adam"),
    (dict(optimizer=3), TypeError, "optimizer must be"),
    (dict(device="tpu"), ValueError, "unknown device 'tpu'; choose one of cpu, cuda"),
    (dict(dtype="float16"), ValueError, "unknown dtype 'float16'; choose 'float32' or"),
    (dict(init="lecun"), ValueError, "unknown init"),
    (dict(l2=-1), ValueError, "l2 must be"),
    (dict(seed=-3), ValueError, "seed"),
])
def test_bad_model_arguments(kwargs, error, match):
    args = dict(n_inputs=3, layers=[(4, "relu"), (1, "sigmoid")])
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fastmlp.MLP(**args)


@pytest.mark.parametrize("make,error,match", [
    (lambda: fastmlp.SGD(lr=-0.1), ValueError, r"SGD: lr must be in \[0.0, inf\]"),
    (lambda: fastmlp.Adam(lr=-1e-3), ValueError, "Adam: lr"),
    (lambda: fastmlp.AdamW(weight_decay=-1), ValueError, "AdamW: weight_decay"),
    (lambda: fastmlp.Adam(beta1=1.0), ValueError, "beta1"),
    (lambda: fastmlp.SGD(lr="fast"), TypeError, "lr must be a number"),
    (lambda: fastmlp.SGD(lr=float("nan")), ValueError, "lr"),
    (lambda: fastmlp.SGD(nesterov=True), ValueError, "nesterov=True needs momentum"),
])
def test_bad_optimizer_settings(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=2.0), TypeError, "batch_size must be an integer"),
    (dict(epochs=-1), ValueError, "epochs must be >= 0"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
    (dict(validation_data=X3), TypeError, "validation_data must be"),
    (dict(validation_data=(np.zeros((2, 4)), [0, 1])), ValueError, "validation X has 4"),
])
def test_bad_fit_arguments(no_kernels, clf, kwargs, error, match):
    with pytest.raises(error, match=match):
        clf.fit(X3, LABELS, **kwargs)


def test_set_weights_checks_everything_before_changing_anything(clf):
    before = clf.get_weights()
    good = [(np.ones((3, 4)), np.ones(4)), (np.ones((4, 3)), np.ones(3))]
    for bad, error, match in [
        (good[:1], ValueError, "got 1 \\(W, b\\) pairs but the model has 2 layers"),
        ([good[0], (np.ones((3, 4)), np.ones(3))], ValueError, r"layer 1 W has shape \(3, 4\)"),
        ([good[0], (np.ones((4, 3)), np.ones(4))], ValueError, r"layer 1 b has shape"),
        ([good[0], (np.ones((4, 3)).astype(complex), np.ones(3))], TypeError, "real numbers"),
        ([good[0], (np.full((4, 3), np.nan), np.ones(3))], ValueError, "NaN"),
        ([good[0], (np.array([["x"] * 3] * 4), np.ones(3))], TypeError, "dtype"),
        (None, TypeError, "list of"),
    ]:
        with pytest.raises(error, match=match):
            clf.set_weights(bad)
        for (W, b), (W0, b0) in zip(clf.get_weights(), before):
            np.testing.assert_array_equal(W, W0)
            np.testing.assert_array_equal(b, b0)
    clf.set_weights(good)  # integer-valued float64 weights into a float32 model: converted
    assert clf.get_weights()[0][0].dtype == np.float32


def test_odd_layouts_and_dtypes_are_converted_not_refused(clf):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    expect = clf.forward(X.astype(np.float32))
    np.testing.assert_array_equal(clf.forward(np.asfortranarray(X)), expect)
    strided = np.zeros((12, 6))
    strided[::2, ::2] = X
    np.testing.assert_array_equal(clf.forward(strided[::2, ::2]), expect)
    np.testing.assert_array_equal(clf.forward(X.tolist()), expect)
    Xi = rng.integers(-3, 3, (6, 3))
    np.testing.assert_array_equal(clf.forward(Xi), clf.forward(Xi.astype(np.float32)))
    clf.fit(np.asfortranarray(X), y.astype(np.float64), epochs=2, progress=False)
    clf.fit(Xi, y.astype(np.int8), epochs=2, progress=False)
    clf.fit(X, np.eye(3)[y], epochs=2, progress=False)


# -- the finiteness scan of large inputs (validation._largest_magnitude) ------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, -np.nan])
@pytest.mark.parametrize("where", [0, 517, -1])
def test_the_scan_finds_every_non_finite_value(monkeypatch, dtype, bad, where):
    from fastmlp.inputs import validation
    monkeypatch.setattr(validation, "FINITE_SCAN_MIN_VALUES", 64)
    X = np.random.default_rng(0).standard_normal((100, 7)).astype(dtype)
    assert validation._all_finite(X)
    X.reshape(-1)[where] = bad
    assert not validation._all_finite(X)
    X.flags.writeable = False  # a frozen array (or a file mapped "r") is scanned the same
    assert not validation._all_finite(X)


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("where", [0, 233, 234, 349, 350, 467, 468, -1])  # part edges
def test_the_scan_split_over_threads_finds_a_value_in_any_part(monkeypatch, parts, where):
    from fastmlp.core import cores
    from fastmlp.inputs import validation
    monkeypatch.setattr(validation, "FINITE_SCAN_MIN_VALUES", 64)
    monkeypatch.setattr(cores, "most_threads", lambda: parts)
    split = []
    real = cores.map_parts
    monkeypatch.setattr(cores, "map_parts",
                        lambda f, a, n, *args: split.append(n) or real(f, a, n, *args))
    X = np.ones((100, 7), np.float32)
    assert validation._all_finite(X) and split == [parts]
    X.reshape(-1)[where] = np.nan
    assert not validation._all_finite(X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_scan_passes_the_extreme_finite_values(monkeypatch, dtype):
    from fastmlp.inputs import validation
    monkeypatch.setattr(validation, "FINITE_SCAN_MIN_VALUES", 64)
    info = np.finfo(dtype)
    X = np.zeros((16, 8), dtype)
    X[0], X[1], X[2], X[3] = info.max, -info.max, info.smallest_subnormal, -0.0
    assert validation._all_finite(X)
    X[4, 4] = np.inf
    assert not validation._all_finite(X)


def test_a_large_non_finite_input_is_refused_before_any_kernel(no_kernels):
    model = fastmlp.MLP(784, [(8, "relu"), (10, "softmax")], dtype="float32", seed=0)
    X = np.ones((2000, 784), np.float32)  # 1.57M values: past FINITE_SCAN_MIN_VALUES
    X[1234, 56] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite value"):
        model.forward(X)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(X, np.zeros(2000, int), epochs=1, progress=False)
