"""Containers and labels that used to be misread or answered with a wrong hint: masked
arrays, scipy sparse matrices, strings and objects, an (n, 1) column of labels, a softmax over
one unit. Every refusal comes before compiled code runs."""
import numpy as np
import pytest

import fastmlp
from fastmlp.cpu import specialize
from fastmlp.cpu import steps as cpu_steps

X = np.arange(15, dtype=np.float64).reshape(5, 3) / 10
LABELS = np.array([0, 1, 2, 1, 0])


@pytest.fixture
def no_kernels(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("compiled code ran before the input was checked")
    for name in ("train_steps", "forward_rows", "evaluate_rows", "gradient_rows"):
        monkeypatch.setattr(cpu_steps, name, boom)
    monkeypatch.setattr(specialize, "for_fit", boom)


@pytest.fixture
def clf():
    return fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0)


def _all_entry_points(model, X, y):
    yield lambda: model.fit(X, y, progress=False)
    yield lambda: model.evaluate(X, y)
    yield lambda: model.loss(X, y)
    yield lambda: model.gradients(X, y)


def test_masked_values_are_refused_not_silently_trained_on(no_kernels, clf):
    Xm = np.ma.masked_array(X, mask=np.zeros_like(X, bool))
    Xm[2, 1] = np.ma.masked
    for call in [*_all_entry_points(clf, Xm, LABELS), lambda: clf.predict(Xm)]:
        with pytest.raises(ValueError, match=r"X is a masked array with 1 masked value.*"
                                             r"X\.filled\(0\)"):
            call()
    ym = np.ma.masked_array(LABELS, mask=[0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match=r"y is a masked array with 1 masked.*y\.filled"):
        clf.fit(X, ym)


def test_a_masked_array_with_nothing_masked_is_its_data(clf):
    Xm = np.ma.masked_array(X, mask=False)
    np.testing.assert_array_equal(clf.forward(Xm), clf.forward(X))


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
def test_sparse_input_is_told_to_use_toarray(no_kernels, clf, kind):
    sparse = pytest.importorskip("scipy.sparse")
    Xs = getattr(sparse, kind)(X)
    for call in [*_all_entry_points(clf, Xs, LABELS), lambda: clf.predict(Xs)]:
        with pytest.raises(TypeError, match=r"X is a scipy sparse matrix.*X\.toarray\(\)") \
                as info:
            call()
        assert "asarray" not in str(info.value)
    with pytest.raises(TypeError, match=r"y\.toarray\(\)"):
        clf.fit(X, getattr(sparse, kind)(np.eye(3)[LABELS]))


def test_messages_for_text_features_and_text_labels(no_kernels, clf):
    for Xs in (X.astype(str), X.astype(str).astype(object), X.astype(bytes),
               np.array([list("abc")] * 5, dtype=object)):
        with pytest.raises(TypeError, match=r"X holds strings.*X\.astype\(float\).*"
                                            r"OneHotEncoder") as info:
            clf.fit(Xs, LABELS)
        assert "dtype=float" not in str(info.value)
    pd = pytest.importorskip("pandas")  # the same text in a DataFrame: the same answer
    with pytest.raises(TypeError, match=r"X holds strings"):
        clf.fit(pd.DataFrame(X.astype(str)), LABELS)
    # Text labels are class labels for a classifier (MLP.classes_): see
    # tests/test_training_features.py. For a regressor they are a mistake:
    reg = fastmlp.MLP(3, [(1, "identity")])
    with pytest.raises(TypeError, match=r"y holds strings.*astype\(float\)"):
        reg.fit(X, np.array(list("abcba")))


def test_object_arrays_of_numbers_are_read_and_others_named(no_kernels, clf):
    pd = pytest.importorskip("pandas")
    for bad, error, match in [
        (np.where(X > 1, None, X.astype(object)), ValueError, "X contains 4 NaN"),  # None
        (pd.DataFrame({"a": pd.array([1, None, 3, 4, 5], dtype="Int64"), "b": X[:, 1],
                       "c": X[:, 2]}), ValueError, "missing values"),
        (np.array([[1, 2, 3j]] * 5, dtype=object), TypeError, "complex"),
        (np.array([[1, 2, {}]] * 5, dtype=object), TypeError, r"not real numbers.*dict"),
        (np.array(["2020-01-01"] * 15, dtype="datetime64[D]").reshape(5, 3), TypeError,
         "dates or durations"),
        (np.zeros(5, dtype=[("a", float), ("b", float), ("c", float)]), TypeError,
         "structured_to_unstructured"),
    ]:
        with pytest.raises(error, match=match):
            clf.fit(bad, LABELS)


def test_object_and_nullable_numbers_train_like_floats():
    # numbers as text are refused whatever holds them (tests above), numbers are read
    clf = fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0, dtype="float64")
    np.testing.assert_array_equal(clf.forward(X.astype(object)), clf.forward(X))
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": pd.array([0, 1, 2, 3, 4], dtype="Int64"), "b": X[:, 1],
                          "c": X[:, 2]})
    expect = X.copy()
    expect[:, 0] = [0, 1, 2, 3, 4]
    a = fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0, dtype="float64")
    b = fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0, dtype="float64")
    a.fit(frame, pd.Series(LABELS, dtype="Int64"), epochs=2, progress=False)
    b.fit(expect, LABELS, epochs=2, progress=False)
    np.testing.assert_array_equal(a.forward(expect.astype(object)), b.forward(expect))


def test_a_column_of_labels_trains_a_softmax_as_the_labels_do():
    models = [fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0, dtype="float64")
              for _ in range(2)]
    column = LABELS.reshape(-1, 1)
    models[0].fit(X, LABELS, epochs=3, batch_size=2, progress=False)
    models[1].fit(X, column, epochs=3, batch_size=2, progress=False)
    np.testing.assert_array_equal(models[0].forward(X), models[1].forward(X))
    assert models[1].evaluate(X, column) == models[0].evaluate(X, LABELS)
    assert models[1].loss(X, column.astype(float)) == models[0].loss(X, LABELS)
    with pytest.raises(ValueError, match=r"integer class labels \(samples,\) or "
                                         r"\(samples, 1\)"):
        models[1].fit(X, column + 0.5)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]: labels the model "
                                         r"does not know: \[3\]"):
        models[1].fit(X, column + 1)  # its classes are 0, 1, 2 since its first fit


def test_a_softmax_over_one_unit_is_refused():
    with pytest.raises(ValueError, match=r"softmax over 1 unit.*\(1, 'sigmoid'\)"):
        fastmlp.MLP(3, [(4, "relu"), (1, "softmax")])
    with pytest.raises(ValueError, match="softmax over 1 unit"):
        fastmlp.MLP(3, [(1, "softmax")], loss="mse")


def test_check_array_reads_weights_as_fit_reads_X():
    from fastmlp.inputs.validation import check_array
    W = np.arange(6.0).reshape(2, 3)
    out = check_array(np.asfortranarray(W).astype(object), "layer 0 W", (2, 3), np.float32)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, W)
    for bad, error, match in [
        (np.ma.masked_array(W, mask=np.eye(2, 3, dtype=bool)), ValueError, "masked"),
        (W.astype(str), TypeError, "strings"),
        (W.T, ValueError, r"layer 0 W has shape \(3, 2\); expected \(2, 3\)"),
        (W * np.nan, ValueError, "layer 0 W contains 6 NaN.*weights must be finite"),
        (np.full((2, 3), 1e300), ValueError, "after conversion to float32"),
    ]:
        with pytest.raises(error, match=match):
            check_array(bad, "layer 0 W", (2, 3), np.float32)
