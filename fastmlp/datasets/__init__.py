"""Datasets: the seeds' worked examples (xor, x_squared, abs_shifted, digits, built in),
MNIST and Fashion-MNIST (load_mnist, from IDX files on disk or downloaded), and the user's own
tables (load_table: CSV, Parquet, .npy, .npz)."""
import gzip
import os

import numpy as np

from .mnist import download_mnist, load_mnist
from .table import load_table


def xor():
    """The four points of XOR and their labels."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return X, np.array([0, 1, 1, 0])


def x_squared(n=100, seed=0):
    """y = x^2 + N(0, 1) noise with x ~ 5 N(0, 1), as in the seeds' regression example."""
    rng = np.random.default_rng(seed)
    x = 5 * rng.standard_normal((n, 1))
    return x, x[:, 0] ** 2 + rng.standard_normal(n)


def abs_shifted(n=200, seed=0):
    """y = |x - 1| on x ~ U(-3, 3): two linear pieces, exactly what two relu units can fit."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(n, 1))
    return x, np.abs(x[:, 0] - 1)


def digits():
    """scikit-learn's bundled 8x8 digits, pixels scaled to [0, 1]; (X (1797, 64), labels).

    Read from scikit-learn's data file as its load_digits does, without importing
    scikit-learn (1-2 s, most of a `fastmlp train` whose kernels are cached); through
    load_digits if the file is not where it was."""
    import importlib.util
    found = importlib.util.find_spec("sklearn")
    for root in (found.submodule_search_locations or []) if found else []:
        path = os.path.join(root, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1] / 16.0, data[:, -1].astype(int)
    from sklearn.datasets import load_digits
    data = load_digits()
    return data.data / 16.0, data.target


DATASETS = {"digits": digits, "xor": xor, "x2": x_squared, "abs": abs_shifted}

__all__ = ["xor", "x_squared", "abs_shifted", "digits", "load_mnist", "download_mnist",
           "load_table", "DATASETS"]
