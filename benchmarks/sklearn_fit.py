"""fit time of fastmlp.sklearn.MLPClassifier beside scikit-learn's MLPClassifier: the same
data, hidden sizes (100,), solver adam, batch_size "auto" (200) and number of epochs (the
tol rule is switched off, so both run every epoch).

    asv run --python=same --bench sklearn_fit   # DropInFit: digits, float32, 20 epochs
    python -m benchmarks.sklearn_fit [--threads N]   # the README table: both in one run

The table: by default each library uses the machine as it would by itself: scikit-learn's
BLAS its default threads (one per core), fastmlp its parallel kernels on every core.
`--threads N` gives both the same N cores: scikit-learn's BLAS N threads, fastmlp N threads
(config.CPU_THREADS; its BLAS calls then take one thread each). Under asv both run on one
thread (benchmarks/__init__.py).
"""
import argparse
import time
import warnings

from sklearn import neural_network as sk
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from .common import COMPILE_TIMEOUT, pin_settings

#: epochs per timed fit of the table: about 2 s of scikit-learn's time on a 2-core machine
EPOCHS = {"digits": 100, "synthetic-784": 5}


def fastmlp_classifier():
    """fastmlp.sklearn.MLPClassifier, imported on first use: commits before the drop-in
    have no fastmlp.sklearn, and this module must still import there."""
    from fastmlp import sklearn as fast
    return fast.MLPClassifier


LIBRARIES = {"fastmlp": fastmlp_classifier, "scikit-learn": lambda: sk.MLPClassifier}


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
    return LIBRARIES[library]()(hidden_layer_sizes=(100,), solver="adam", max_iter=epochs,
                                tol=0.0, n_iter_no_change=epochs + 1, random_state=0)


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


class DropInFit:
    """CPU seconds for one fit of the drop-in on the digits (1,347 training rows scaled to
    [0, 1], float32): hidden (100,), adam, batch 200, 20 epochs, one thread; scikit-learn's
    own MLPClassifier beside it, as the yardstick (its figure moves only with the machine
    and the pinned scikit-learn). track_error_percent: the held-out error of that fit."""
    params = list(LIBRARIES)
    param_names = ["library"]
    version = "1"
    timer = time.process_time
    repeat = (5, 10, 20.0)
    timeout = COMPILE_TIMEOUT
    epochs = 20

    def setup(self, library):
        try:
            estimator(library, 1)
        except ImportError as exc:
            raise NotImplementedError(f"this commit has no fastmlp.sklearn: {exc}") from exc
        pin_settings()
        self.X, self.X_test, self.y, self.y_test = dataset("digits", "float32")
        if library == "fastmlp":  # load (or compile) the kernels outside the timing
            fit(estimator(library, 1), self.X[:400], self.y[:400])

    def time_fit(self, library):
        fit(estimator(library, self.epochs), self.X, self.y)

    def track_error_percent(self, library):
        model = fit(estimator(library, self.epochs), self.X, self.y)
        return 100 * (1 - model.score(self.X_test, self.y_test))

    track_error_percent.unit = "%"


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
