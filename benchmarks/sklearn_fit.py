"""fit time of fastmlp.sklearn.MLPClassifier beside scikit-learn's MLPClassifier: the same
data, hidden sizes (100,), solver adam, batch_size "auto" (200) and number of epochs (the
tol rule is switched off, so both run every epoch).

    asv run --python=same --bench sklearn_fit
    python -m benchmarks.sklearn_fit [--threads N]   # the README table: both in one run

By default each library uses the machine as it would by itself: scikit-learn's BLAS its
default threads (one per core), fastmlp its parallel kernels on every core. `--threads N`
gives both the same N cores: scikit-learn's BLAS N threads, fastmlp N threads
(config.CPU_THREADS; its BLAS calls then take one thread each).
"""
import argparse
import time
import warnings

from sklearn import neural_network as sk
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastmlp import sklearn as fast

from .common import COMPILE_TIMEOUT

#: epochs per timed fit: about 2 s of scikit-learn's time on a 2-core machine
EPOCHS = {"digits": 100, "synthetic-784": 5}
LIBRARIES = {"fastmlp": fast.MLPClassifier, "scikit-learn": sk.MLPClassifier}


def dataset(name, dtype):
    """(X_train, X_test, y_train, y_test): digits scaled to [0, 1], or 20,000 + 5,000 rows of
    a 784-feature, 10-class synthetic problem (MNIST's shape)."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    else:
        X, y = make_classification(n_samples=25_000, n_features=784, n_informative=60,
                                   n_classes=10, random_state=0)
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    test = 0.25 if name == "digits" else 0.2
    return train_test_split(X.astype(dtype), y, test_size=test, stratify=y, random_state=0)


def estimator(library, epochs):
    return LIBRARIES[library](hidden_layer_sizes=(100,), solver="adam", max_iter=epochs,
                              tol=0.0, n_iter_no_change=epochs + 1, random_state=0)


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


class SklearnFit:
    """Seconds for one fit of EPOCHS[dataset] epochs, and the held-out accuracy it reaches."""
    params = (list(EPOCHS), ["float32", "float64"], list(LIBRARIES))
    param_names = ["dataset", "dtype", "library"]
    repeat = (1, 3, 30.0)
    number = 1
    timeout = COMPILE_TIMEOUT

    def setup(self, name, dtype, library):
        self.X, self.X_test, self.y, self.y_test = dataset(name, dtype)
        self.epochs = EPOCHS[name]
        if library == "fastmlp":  # load (or compile) the kernels outside the timing
            fit(estimator(library, 1), self.X[:400], self.y[:400])

    def time_fit(self, name, dtype, library):
        fit(estimator(library, self.epochs), self.X, self.y)

    def track_accuracy(self, name, dtype, library):
        model = fit(estimator(library, self.epochs), self.X, self.y)
        return model.score(self.X_test, self.y_test)

    track_accuracy.unit = "accuracy"


def compare(name, dtype, rounds=3):
    """Best-of-`rounds` fit seconds of each library, alternating them so that both see the
    same load on a shared machine; and the held-out accuracy of each."""
    X, X_test, y, y_test = dataset(name, dtype)
    fit(estimator("fastmlp", 1), X[:400], y[:400])
    seconds = {library: [] for library in LIBRARIES}
    scores = {}
    for _ in range(rounds):
        for library in LIBRARIES:
            start = time.perf_counter()
            model = fit(estimator(library, EPOCHS[name]), X, y)
            seconds[library].append(time.perf_counter() - start)
            scores[library] = model.score(X_test, y_test)
    return {library: (min(seconds[library]), scores[library]) for library in LIBRARIES}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for each library (default: each library's default)")
    args = parser.parse_args()
    if args.threads is None:
        table()
        return
    from threadpoolctl import threadpool_limits

    from fastmlp import config
    config.CPU_THREADS = args.threads
    with threadpool_limits(limits=args.threads, user_api="blas"):
        table()


def table():
    print("| data | dtype | epochs | scikit-learn fit | fastmlp fit | speed-up | "
          "accuracy (sklearn / fastmlp) |")
    print("|---|---|---|---|---|---|---|")
    for name in EPOCHS:
        for dtype in ("float64", "float32"):
            result = compare(name, dtype)
            (slow, slow_score), (quick, quick_score) = result["scikit-learn"], \
                result["fastmlp"]
            print(f"| {name} | {dtype} | {EPOCHS[name]} | {slow:.2f} s | {quick:.2f} s | "
                  f"{slow / quick:.1f}x | {slow_score:.3f} / {quick_score:.3f} |", flush=True)


if __name__ == "__main__":
    main()
