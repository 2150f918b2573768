"""Feature names: the columns a model was trained on (scikit-learn's `feature_names_in_`),
kept so that a table with the same columns in another order is read by name, not position.

A table whose columns are the trained names in another order is reordered by name: the
names say which column is which, so reordering computes exactly what the user meant, where
refusing would make every caller write ``df[model.feature_names_in_]`` (fastmlp.sklearn's
estimators keep scikit-learn's own rule, which refuses another order). Missing or extra
names are a ValueError naming them. Arrays without names are taken by position, with
scikit-learn's warnings where one side has names and the other has none.
"""
import os
import sys
import warnings

import numpy as np

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller_level():
    """The stacklevel of the first frame outside fastmlp: the user's line, as the warning
    should name, however many of fastmlp's calls lie between."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def names_of(X):
    """The column names of a DataFrame-like X (pandas, polars) as a tuple of str, or None
    for arrays and for frames whose column names are not all strings (scikit-learn's rule;
    a frame mixing str and non-str names is a TypeError, as there)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray) or isinstance(columns, str):
        return None
    try:
        names = list(columns)
    except TypeError:
        return None
    strings = [isinstance(c, str) for c in names]
    if not names or not any(strings):
        return None
    if not all(strings):
        kinds = sorted({type(c).__name__ for c in names})
        raise TypeError(f"X's column names must all be strings or all be non-strings; got "
                        f"{', '.join(kinds)}: convert them with X.columns = X.columns.astype(str)")
    return tuple(names)


def check_names(names, n_inputs, where):
    """A list of n_inputs distinct str (a model file's "feature_names") as a numpy array of
    str, or None for None; a ValueError naming `where` otherwise."""
    if names is None:
        return None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: feature names must be a list of strings; got "
                         f"{type(names).__name__} {str(names)[:60]}")
    if len(names) != n_inputs:
        raise ValueError(f"{where}: it names {len(names)} features but the model takes "
                         f"{n_inputs} inputs")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{where}: feature name(s) {_shown(twice)} appear more than once")
    return np.array(names, dtype=object)


def _shown(names, limit=10):
    return ", ".join(map(repr, list(names)[:limit])) + (", ..." if len(names) > limit else "")


def column_order(given, trained, where):
    """The positions in `given` (a table's column names) of the `trained` names, in the
    trained order: None when they already match; a ValueError naming the missing and
    extra columns when the sets differ."""
    given, trained = list(given), list(trained)
    if given == trained:
        return None
    if len(set(given)) != len(given):
        twice = sorted({n for n in given if given.count(n) > 1})
        raise ValueError(f"{where} has column(s) {_shown(twice)} more than once; each "
                         f"feature must appear once")
    missing = [n for n in trained if n not in set(given)]
    extra = [n for n in given if n not in set(trained)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {_shown(missing)}")
        if extra:
            parts.append(f"not seen in training: {_shown(extra)}")
        if len(given) != len(trained):
            parts.append(f"{len(given)} feature columns where the model has {len(trained)}")
        raise ValueError(f"the feature columns of {where} do not match the ones the model "
                         f"was trained on ({'; '.join(parts)}); it takes {_shown(trained)}")
    position = {n: i for i, n in enumerate(given)}
    return np.array([position[n] for n in trained], dtype=np.intp)


def align(X, trained, what="X", learn=False):
    """(X with its columns in the trained order, X's names or None). A frame is reordered
    by name; anything unnamed passes through, with scikit-learn's warning when the model
    has names (or X has names the model lacks, except when fit is learning them)."""
    given = names_of(X)
    if given is None:
        if trained is not None:
            warnings.warn(f"{what} does not have valid feature names, but MLP was fitted "
                          f"with feature names", UserWarning, stacklevel=_caller_level())
        return X, None
    if trained is None:
        if not learn:
            warnings.warn(f"{what} has feature names, but MLP was fitted without feature "
                          f"names", UserWarning, stacklevel=_caller_level())
        return X, given
    order = column_order(given, trained, what)
    if order is not None:
        X = X[[given[i] for i in order]]
    return X, given
