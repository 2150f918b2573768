"""The CLI's numpy train_test_split and digits loader give what scikit-learn's do."""
import numpy as np
import pytest

from fastmlp.inputs import split
from fastmlp.datasets import digits


@pytest.mark.parametrize("stratified", [False, True])
def test_split_draws_the_rows_scikit_learn_draws(stratified):
    from sklearn.model_selection import train_test_split
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(2, 400))
        fraction = float(rng.choice([0.1, 0.25, 0.5, 0.9, rng.uniform(0.01, 0.99)]))
        seed = int(rng.integers(0, 2**32))
        y = rng.integers(0, int(rng.integers(1, 12)), n) if stratified else None
        if y is not None and np.bincount(y).min(initial=0) < 2:
            y = y % 2 if np.bincount(y % 2).min() >= 2 else None
            if y is None:
                continue
        try:
            expected = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                        stratify=y)
        except ValueError:
            assert split.train_test_split(n, fraction, seed, y) is None
            continue
        got = split.train_test_split(n, fraction, seed, y)
        assert got is not None
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
        checked += 1
    assert checked > 250


def test_split_leaves_what_scikit_learn_refuses_to_it():
    assert split.train_test_split(3, 0.9, 0, None) is None  # no training row
    assert split.train_test_split(10, 1, 0, None) is None  # an int: not this path
    assert split.train_test_split(10, 0.1, 0, np.repeat([0, 1], 5)) is None  # 1 < 2 classes


def test_digits_are_scikit_learns():
    from sklearn.datasets import load_digits
    X, y = digits()
    data = load_digits()
    np.testing.assert_array_equal(X, data.data / 16.0)
    np.testing.assert_array_equal(y, data.target)
    assert y.dtype == data.target.dtype
