"""Regression tests for the model-level items of the reliability review (the others are in
test_reliability_*.py, test_faults.py, test_properties.py and test_training_features.py)."""
import math

import numpy as np
import pytest

import fastmlp


def test_an_array_as_init_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown init array"):
        fastmlp.MLP(3, [(2, "softmax")], init=np.zeros(2))


def test_gradcheck_never_passes_non_finite_gradients():
    model = fastmlp.MLP(2, [(2, "identity"), (1, "identity")], seed=0)
    model.set_weights([(np.full((2, 2), 1e30), np.zeros(2)), (np.full((2, 1), 1e30), np.zeros(1))])
    X, y = np.full((3, 2), 1e10), np.zeros(3)
    assert not np.isfinite(model.gradients(X, y)[0][0]).all()
    assert fastmlp.gradcheck(model, X, y) == math.inf  # was 0.0: max(worst, nan) kept worst


@pytest.mark.parametrize("eps", [math.inf, math.nan, 0.0, -1e-5])
def test_gradcheck_refuses_a_step_that_is_not_finite_and_positive(eps):
    model = fastmlp.MLP(2, [(1, "identity")], seed=0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        fastmlp.gradcheck(model, np.zeros((2, 2)), np.zeros(2), eps=eps)
