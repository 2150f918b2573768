"""MNIST and Fashion-MNIST: find the four IDX files, read them, and download them.

Places searched, first match wins: ``path`` when given (then it is the only place), else
``$FASTMLP_DATA/<variant>``, the user cache (``~/.cache/fastmlp/datasets/<variant>``, moved
by ``$FASTMLP_CACHE_DIR`` or ``$XDG_CACHE_HOME``), and for Fashion-MNIST the directory
Debian's ``dataset-fashion-mnist`` package installs. Each file may be raw or ``.gz``.
"""
import contextlib
import hashlib
import os
import signal
import threading
import time

import numpy as np

from ..files import atomic_write, cache_root, digest
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

VARIANTS = ("mnist", "fashion")
SPLITS = ("train", "test")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

#: Mirrors tried in order; the environment variable replaces them (tests point it at a
#: local server; a site with its own copy can too).
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
MIRROR_ENV = {"mnist": "FASTMLP_MNIST_MIRROR", "fashion": "FASTMLP_FASHION_MIRROR"}
#: MD5 of each .gz file, as the dataset authors publish them (integrity, not security).
CHECKSUMS = {
    "mnist": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "fashion": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
}
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
CHUNK = 1 << 16
#: No published file is larger than 27 MB: a mirror sending more is refused (it may never end).
MAX_DOWNLOAD_BYTES = 64 << 20
#: A file that takes longer than this is abandoned (a mirror may trickle a byte a minute).
DOWNLOAD_SECONDS = 600


class DownloadError(OSError):
    """A download that did not complete, or whose checksum did not match."""


def _check_choice(value, choices, what):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}; got "
                         f"{value!r}")
    return value


def cache_directory(variant):
    """Where downloads of `variant` go: <cache root>/datasets/<variant>."""
    return os.path.join(cache_root(), "datasets", variant)


def search_path(variant, path=None):
    """The directories load_mnist looks in, in order."""
    if path is not None:
        return [os.fspath(path)]
    places = []
    if os.environ.get("FASTMLP_DATA"):
        places.append(os.path.join(os.environ["FASTMLP_DATA"], variant))
    places.append(cache_directory(variant))
    if variant == "fashion":
        places.append(DEBIAN_FASHION)
    return places


def _find(directory, names):
    """The paths of all `names` in directory (each raw or .gz), or None if any is missing."""
    found = []
    for name in names:
        for candidate in (name, name + ".gz"):
            full = os.path.join(directory, candidate)
            if os.path.isfile(full):
                found.append(full)
                break
        else:
            return None
    return found


def _missing_message(variant, split, places):
    names = " and ".join(f"{n}[.gz]" for n in FILES[split])
    how = (f"fetch them with `fastmlp download {variant}` or "
           f"load_mnist(..., download=True), or put them in one of those directories")
    if variant == "fashion":
        how += " (on Debian/Ubuntu: apt install dataset-fashion-mnist)"
    return (f"{variant} {split} files {names} not found; looked in: "
            f"{', '.join(places)}. To get them: {how}")


def load_mnist(split="train", variant="mnist", path=None, download=False):
    """(X float32 (n, 784) scaled to [0, 1], y int64 (n,)) of MNIST or Fashion-MNIST.

    split: "train" (60,000 rows) or "test" (10,000). variant: "mnist" or "fashion".
    path: a directory holding the IDX files; when given it is the only place searched, and
    where download=True writes. download: fetch missing files from the public mirrors (MD5
    checked, written atomically into the cache).
    """
    split = _check_choice(split, SPLITS, "split")
    variant = _check_choice(variant, VARIANTS, "variant")
    places = search_path(variant, path)
    for directory in places:
        found = _find(directory, FILES[split])
        if found:
            break
    else:
        if not download:
            raise FileNotFoundError(_missing_message(variant, split, places))
        target = places[0] if path is not None else cache_directory(variant)
        found = download_mnist(variant, target, splits=(split,))[:2]
    return _read_pair(*found)


def _read_pair(images_path, labels_path):
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path!r} holds images of shape {images.shape[1:]}; "
                         f"MNIST images are 28 x 28")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{labels_path!r} holds {len(labels)} labels but "
                         f"{images_path!r} holds {len(images)} images; the files do not "
                         f"belong together")
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{labels_path!r} holds label {labels.max()}; MNIST labels are 0-9")
    X = images.reshape(len(images), 784).astype(np.float32)
    X /= 255.0
    return X, labels.astype(np.int64)


# -- download ---------------------------------------------------------------------------------

def mirrors_for(variant, mirrors=None):
    """The base URLs to try: `mirrors`, else the environment variable, else MIRRORS."""
    if mirrors is None:
        env = os.environ.get(MIRROR_ENV[variant])
        mirrors = env.split() if env else MIRRORS[variant]
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def download_mnist(variant="mnist", directory=None, splits=SPLITS, mirrors=None,
                   progress=True):
    """Download the .gz IDX files of `variant` for `splits` into directory (default: the
    cache); returns their paths. Files already there are kept when their MD5 is right (and
    fetched again when not); each new file's MD5 is checked before it is moved into place,
    so the directory never holds a partial file. A failure removes the directories it made."""
    variant = _check_choice(variant, VARIANTS, "variant")
    directory = cache_directory(variant) if directory is None else os.fspath(directory)
    splits = [_check_choice(split, SPLITS, "split") for split in splits]
    made = _missing_parent(directory)
    os.makedirs(directory, exist_ok=True)
    paths = []
    try:
        with _terminate_cleanly():
            for split in splits:
                for name in FILES[split]:
                    target = os.path.join(directory, name + ".gz")
                    if not _is_good(target, CHECKSUMS[variant][name + ".gz"]):
                        _download_one(variant, name + ".gz", target,
                                      mirrors_for(variant, mirrors), progress)
                    paths.append(target)
    except BaseException:
        _remove_empty(directory, made)
        raise
    return paths


def _missing_parent(directory):
    """The outermost directory of `directory`'s path that does not exist yet, or None."""
    missing, path = None, os.path.abspath(directory)
    while not os.path.isdir(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_empty(directory, made):
    """Remove directory and its parents up to `made` (the ones this call created), while
    they are empty."""
    if made is None:
        return
    path = os.path.abspath(directory)
    while True:
        try:
            os.rmdir(path)
        except OSError:
            return
        if path == made:
            return
        path = os.path.dirname(path)


def _is_good(path, md5):
    return os.path.isfile(path) and digest(path, "md5") == md5


@contextlib.contextmanager
def _terminate_cleanly():
    """SIGTERM, where it would kill the process outright, raises SystemExit instead while
    files download, so that the partial file is removed on the way out."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _download_one(variant, name, target, mirrors, progress):
    from http.client import HTTPException  # the network stack loads when a file is fetched
    failures = []
    for base in mirrors:
        try:
            _fetch(base + name, target, CHECKSUMS[variant][name], progress)
            return
        except (OSError, HTTPException, ValueError) as exc:  # URLError is an OSError
            failures.append(f"{base + name}: {exc}")
    raise DownloadError(f"could not download {name}: " + "; ".join(failures))


def _fetch(url, target, md5, progress):
    """Stream url into a temporary file beside target (files.atomic_write); move it there
    only if complete and its MD5 matches. Any failure (Ctrl-C included) removes it."""
    atomic_write(target, lambda f: _download(url, f, target, md5, progress), suffix=".part")


def _download(url, f, target, md5, progress):
    import urllib.request
    digest = hashlib.md5()
    received = 0
    with urllib.request.urlopen(url, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise DownloadError(f"the mirror announces {total} bytes, more than the "
                                f"{MAX_DOWNLOAD_BYTES} any published file has")
        deadline = time.monotonic() + DOWNLOAD_SECONDS
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=os.path.basename(target), leave=False)
        try:
            while chunk := response.read1(CHUNK):
                f.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(f"the mirror sent more than {MAX_DOWNLOAD_BYTES} "
                                        f"bytes, more than any published file has; stopped")
                if time.monotonic() > deadline:
                    raise DownloadError(f"stopped after {DOWNLOAD_SECONDS} s with "
                                        f"{received} bytes: the mirror is too slow")
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    # http.client returns short reads silently when the server closes early.
    if total is not None and received != total:
        raise DownloadError(f"transfer interrupted after {received} of {total} bytes")
    if digest.hexdigest() != md5:
        raise DownloadError(f"checksum mismatch (MD5 {digest.hexdigest()}, expected "
                            f"{md5}); the file was not kept")
