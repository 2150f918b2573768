"""The real Fashion-MNIST run: 784 -> 256 relu -> 10 softmax, Adam 1e-3, batches of 128 on
the 60,000 training images, scored on the 10,000 test images.

It needs the dataset's four IDX files (raw or .gz) in $FASHION_MNIST_DIR or in
/usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist package); without them
both benchmarks are skipped with a message saying so (`fastmlp download fashion` fetches
them to ~/.cache/fastmlp/datasets/fashion: point FASHION_MNIST_DIR there).
"""
import gzip
import os
import time

import numpy as np

from .common import COMPILE_TIMEOUT, pin_settings

PLACES = ("$FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
EPOCHS_SCORED = 5


def find_file(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def data_directory():
    """The first place holding all four files, or NotImplementedError (asv: skipped)."""
    for place in PLACES:
        directory = os.path.expandvars(place)
        if directory == place and place.startswith("$"):
            continue  # the variable is not set
        names = [name for pair in FILES.values() for name in pair]
        if all(find_file(directory, name) for name in names):
            return directory
    raise NotImplementedError(
        "Fashion-MNIST's IDX files (train-images-idx3-ubyte[.gz] and the other three) are "
        "not in $FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist: install Debian's "
        "dataset-fashion-mnist, or run `fastmlp download fashion` and set "
        "FASHION_MNIST_DIR=~/.cache/fastmlp/datasets/fashion")


def read_idx(path):
    """An IDX file's array: big-endian magic (2 zero bytes, type 0x08 = unsigned bytes,
    dimensions), the sizes as big-endian int32, then the bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path!r} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split):
    """(X float32 in [0, 1] shaped (n, 784), y int64) of the split."""
    directory = data_directory()
    images, labels = (read_idx(find_file(directory, name)) for name in FILES[split])
    return (images.reshape(len(images), -1).astype(np.float32) / 255,
            labels.astype(np.int64))


def model():
    import fastmlp
    return fastmlp.MLP(784, [(256, "relu"), (10, "softmax")], optimizer=fastmlp.Adam(lr=1e-3),
                       seed=0)


class FashionMNIST:
    """time_epoch: CPU seconds for one epoch (469 steps; float32, one thread) of a fresh
    model. track_test_error_percent: the test error after EPOCHS_SCORED epochs (seed 0)."""
    version = "1"
    timer = time.process_time
    number = 1
    repeat = (3, 5, 30.0)
    timeout = COMPILE_TIMEOUT

    def setup(self):
        self.X, self.y = load("train")
        pin_settings()
        self.model = model()
        self.model.fit(self.X[:128], self.y[:128], epochs=1, batch_size=128, progress=False)

    def time_epoch(self):
        self.model.fit(self.X, self.y, epochs=1, batch_size=128, progress=False)

    def track_test_error_percent(self):
        X_test, y_test = load("test")
        fresh = model()
        fresh.fit(self.X, self.y, epochs=EPOCHS_SCORED, batch_size=128, progress=False)
        return 100 * float(np.mean(fresh.predict(X_test) != y_test))

    track_test_error_percent.unit = "%"
