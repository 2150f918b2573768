"""The one home of scalar checks: every number, count and flag a user passes (fit's epochs,
an optimizer's lr, a schedule's power, a layer's size) is checked here, before any compiled
code runs, with an error that names the argument and what it accepts.

bool is refused wherever a number is asked for: True is an int to Python, never a batch size
to a user. numpy scalars (np.float32(0.1), np.int64(3)) are accepted.
"""
import math
import numbers

import numpy as np


def _bound(low, high, low_open, high_open):
    """'>= 0', '> 0 and <= 1', ... (low and high as given, printed with :g)."""
    parts = []
    if low > -math.inf:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high < math.inf:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def check_real(value, name, low=-math.inf, high=math.inf, *, low_open=False, high_open=False,
               allow_inf=False, interval=False):
    """value as a float: a real number (not a bool), finite unless allow_inf, in the range
    low..high (each end open or closed). TypeError for a non-number, ValueError otherwise.
    The ValueError says 'a finite number >= low', or with interval=True 'in [low, high]'
    (the optimizers' wording)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high or (math.isinf(value) and not allow_inf):
        if interval:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}; got {value}")
        what = "a number" if allow_inf else "a finite number"
        bound = _bound(low, high, low_open, high_open)
        raise ValueError(f"{name} must be {what}{' ' + bound if bound else ''}; "
                         f"got {value!r}")
    return value


def _is_integral(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def check_int(value, name, minimum=None, maximum=None):
    """value as an int: an integer (not a bool, not a float such as 2.0) in
    minimum..maximum (None: unbounded)."""
    if not _is_integral(value):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {value}")
    return int(value)


def check_size(value, name):
    """A count of units or features: a positive integer."""
    if not _is_integral(value):
        raise TypeError(f"{name} must be a positive integer; got {type(value).__name__} "
                        f"{value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def check_whole(value, name, low=0.0):
    """A whole number given as an int or an integral float (a schedule's step_size from
    JSON may read 3.0): returned as an int, >= low."""
    real = check_real(value, name, low)
    if real != int(real):
        raise ValueError(f"{name} must be a whole number; got {value!r}")
    return int(real)


def check_bool(value, name):
    """True or False (numpy's bool too); 0 and 1 are refused, as for any flag."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)
