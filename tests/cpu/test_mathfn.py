"""The float32 exp, log, log1p and tanh of cpu/mathfn.py against float64 numpy, in ulps."""
import numpy as np
import pytest

from fastmlp.config import jit
from fastmlp.core.mathfn import fast_exp, fast_log, fast_log1p, fast_tanh


@jit
def _apply(fn_code, x, out):
    for i in range(x.shape[0]):
        if fn_code == 0:
            out[i] = fast_exp(x[i])
        elif fn_code == 1:
            out[i] = fast_log(x[i])
        elif fn_code == 2:
            out[i] = fast_log1p(x[i])
        else:
            out[i] = fast_tanh(x[i])


FUNCTIONS = {"exp": (0, np.exp), "log": (1, np.log), "log1p": (2, np.log1p),
             "tanh": (3, np.tanh)}


def ulp_error(fn, x):
    code, reference = FUNCTIONS[fn]
    out = np.empty_like(x)
    _apply(code, x, out)
    with np.errstate(all="ignore"):
        ref = reference(x.astype(np.float64))
    finite = np.isfinite(ref) & (np.abs(ref) < np.finfo(np.float32).max)
    spacing = np.spacing(np.abs(ref[finite]).astype(np.float32)).astype(np.float64)
    return out, np.abs(out[finite] - ref[finite]) / spacing


def samples(rng, lo, hi, n=200_000):
    """float32 values spread over [lo, hi] in log scale (both signs where lo < 0)."""
    return np.exp(rng.uniform(lo, hi, n)).astype(np.float32)


def test_exp_is_within_one_ulp(rng):
    x = rng.uniform(-87, 88, 400_000).astype(np.float32)
    _, err = ulp_error("exp", x)
    assert err.max() < 1.0


def test_log_is_within_one_ulp_over_the_whole_range(rng):
    x = np.concatenate([samples(rng, -103, 88), rng.uniform(0.5, 2, 200_000)
                        .astype(np.float32)])  # subnormals, and the steep part near 1
    _, err = ulp_error("log", x)
    assert err.max() < 1.0


@pytest.mark.parametrize("lo,hi", [(-1.0, -1e-3), (-1e-3, 1e-3), (1e-3, 1e3), (1e3, 3e38)])
def test_log1p_is_within_one_and_a_half_ulp(rng, lo, hi):
    x = rng.uniform(lo, hi, 200_000).astype(np.float32)
    if lo > 0:
        x = samples(rng, np.log(lo), np.log(hi))
    _, err = ulp_error("log1p", x)
    assert err.max() < 1.5


@pytest.mark.parametrize("lo,hi", [(0.0, 0.625), (0.6, 0.7), (0.625, 12.0), (-12.0, 0.0)])
def test_tanh_is_within_one_and_a_half_ulp(rng, lo, hi):
    # Both sides of the switch from the polynomial to the exp form at 0.625; a check of every
    # float32 in [0, 12] found at most 1.34 ulp (at 0.6326), and tanh is odd.
    x = rng.uniform(lo, hi, 200_000).astype(np.float32)
    _, err = ulp_error("tanh", x)
    assert err.max() < 1.5


def test_tiny_tanh_is_x_itself_and_keeps_the_sign_of_zero():
    x = np.array([2 ** -13, -2 ** -13, 1e-30, -1e-30, 2 ** -149, 0.0, -0.0], np.float32)
    out, _ = ulp_error("tanh", x)
    np.testing.assert_array_equal(out, x)
    assert np.signbit(out[-1]) and not np.signbit(out[-2])


def test_tiny_log1p_is_x_itself():
    x = np.array([1e-30, -1e-30, 1e-9, 2 ** -149], np.float32)
    out, _ = ulp_error("log1p", x)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("fn,x,expected", [
    ("log", 0.0, -np.inf), ("log", -1.0, np.nan), ("log", np.inf, np.inf),
    ("log", np.nan, np.nan), ("log", 1.0, 0.0), ("log", 2 ** -149, np.log(2.0 ** -149)),
    ("log1p", -1.0, -np.inf), ("log1p", -2.0, np.nan), ("log1p", np.inf, np.inf),
    ("log1p", np.nan, np.nan), ("log1p", 0.0, 0.0),
    ("exp", np.nan, np.nan),
    ("tanh", np.inf, 1.0), ("tanh", -np.inf, -1.0), ("tanh", np.nan, np.nan),
    ("tanh", 9.5, 1.0), ("tanh", 1e30, 1.0), ("tanh", 0.0, 0.0),
])
def test_special_values(fn, x, expected):
    out = np.empty(1, np.float32)
    _apply(FUNCTIONS[fn][0], np.array([x], np.float32), out)
    np.testing.assert_allclose(out[0], np.float32(expected), rtol=1e-6)


def test_exp_saturates_instead_of_overflowing():
    # exp32 clamps its argument to [-87.33, 88.37] (no branches): the ends give the smallest
    # normal float32 and ~2.4e38, where sigmoid and softmax need nothing more exact.
    out = np.empty(2, np.float32)
    _apply(0, np.array([-np.inf, np.inf], np.float32), out)
    assert 0 < out[0] <= np.finfo(np.float32).tiny * 1.01
    assert 2e38 < out[1] < np.inf
