"""IDX files, the MNIST search path, downloads from a local HTTP server, and load_table."""
import gzip
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from fastmlp import datasets
from fastmlp.datasets import idx, mnist
from fastmlp.datasets.mnist import DownloadError, load_mnist

NAMES = mnist.FILES["train"] + mnist.FILES["test"]


def tiny_mnist(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n,
                                                                          dtype=np.uint8)


def write_split(directory, split, n, compress=False, seed=0):
    images, labels = tiny_mnist(n, seed)
    suffix = ".gz" if compress else ""
    image_name, label_name = mnist.FILES[split]
    directory.mkdir(parents=True, exist_ok=True)
    idx.write_idx(directory / (image_name + suffix), images)
    idx.write_idx(directory / (label_name + suffix), labels)
    return images, labels


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No ambient data directories: the cache lives under tmp_path, FASTMLP_DATA is unset."""
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "DEBIAN_FASHION", str(tmp_path / "debian"))
    return tmp_path


# -- IDX -------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_reads_raw_and_gz(tmp_path, clean_env, compress):
    images, labels = write_split(tmp_path / "d", "test", 5, compress)
    X, y = load_mnist("test", path=tmp_path / "d")
    assert X.dtype == np.float32 and X.shape == (5, 784) and y.dtype == np.int64
    np.testing.assert_array_equal(X, images.reshape(5, 784) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert 0 <= X.min() and X.max() <= 1


def test_idx_round_trip_other_types(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    idx.write_idx(tmp_path / "a.idx", a)
    b = idx.read_idx(tmp_path / "a.idx", 0x0D03)
    np.testing.assert_array_equal(a, b)


def test_wrong_magic_names_the_file(tmp_path):
    write_split(tmp_path, "train", 3)
    # Labels where images belong: magic 2049 in the images file.
    os.replace(tmp_path / "train-labels-idx1-ubyte", tmp_path / "train-images-idx3-ubyte")
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic number 2049, "
                                         r"expected 2051"):
        load_mnist("train", path=tmp_path)


@pytest.mark.parametrize("cut", [1, 100, 784 * 3 + 16 - 1])
def test_truncated_file_names_the_file(tmp_path, cut):
    write_split(tmp_path, "train", 3)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*(truncated|too short)"):
        load_mnist("train", path=tmp_path)


def test_truncated_gzip_names_the_file(tmp_path):
    write_split(tmp_path, "train", 3, compress=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*gzip"):
        load_mnist("train", path=tmp_path)


def test_trailing_bytes_are_refused(tmp_path):
    write_split(tmp_path, "train", 3)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte. is longer than its header"):
        load_mnist("train", path=tmp_path)


def test_count_mismatch_names_both_files(tmp_path):
    write_split(tmp_path, "train", 3)
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="holds 4 labels but .*train-images.* holds 3 images"):
        load_mnist("train", path=tmp_path)


def test_wrong_image_size_and_label_range(tmp_path):
    idx.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 8, 8), np.uint8))
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"shape \(8, 8\).*28 x 28"):
        load_mnist("train", path=tmp_path)
    write_split(tmp_path, "train", 2)
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([3, 12], np.uint8))
    with pytest.raises(ValueError, match="label 12"):
        load_mnist("train", path=tmp_path)


# -- where the files are looked for ------------------------------------------------------------

def test_missing_files_say_what_where_and_how(clean_env):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("test", variant="fashion")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert str(clean_env / "cache" / "datasets" / "fashion") in message
    assert str(clean_env / "debian") in message
    assert "fastmlp download fashion" in message and "download=True" in message


def test_search_order(clean_env, monkeypatch):
    tmp = clean_env
    data, cache, debian = tmp / "data", tmp / "cache" / "datasets" / "fashion", tmp / "debian"
    write_split(debian, "test", 2)
    assert len(load_mnist("test", "fashion")[1]) == 2  # Debian's directory, for fashion only
    with pytest.raises(FileNotFoundError):
        load_mnist("test", "mnist")
    write_split(cache, "test", 3)
    assert len(load_mnist("test", "fashion")[1]) == 3  # the cache comes before Debian's
    monkeypatch.setenv("FASTMLP_DATA", str(data))
    write_split(data / "fashion", "test", 4)
    assert len(load_mnist("test", "fashion")[1]) == 4  # $FASTMLP_DATA before the cache
    write_split(tmp / "mine", "test", 5)
    assert len(load_mnist("test", "fashion", path=tmp / "mine")[1]) == 5
    with pytest.raises(FileNotFoundError, match="empty"):  # path is the only place searched
        load_mnist("test", "fashion", path=tmp / "empty")


def test_cache_follows_xdg_and_fastmlp_cache_dir(monkeypatch, tmp_path):
    from fastmlp.files import cache_root
    monkeypatch.delenv("FASTMLP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist.cache_directory("mnist") == str(tmp_path / "xdg" / "fastmlp" / "datasets" /
                                                 "mnist")
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "own"))
    assert cache_root() == str(tmp_path / "own")
    assert mnist.cache_directory("fashion") == str(tmp_path / "own" / "datasets" / "fashion")


@pytest.mark.parametrize("kwargs,message", [
    ({"split": "validation"}, "split must be one of 'train', 'test'"),
    ({"variant": "kmnist"}, "variant must be one of 'mnist', 'fashion'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_mnist(**kwargs)


# -- downloads over a real HTTP round trip ----------------------------------------------------

class Server:
    """A local HTTP server of {name: bytes}; names in `short` get a Content-Length of the
    whole file but only half of it before the connection closes."""

    def __init__(self):
        self.files, self.short, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if name in server.short else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, clean_env):
    """Tiny gzipped IDX files served locally, their MD5s in place of the published ones."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    s = Server()
    sums = {}
    for split, n in (("train", 6), ("test", 4)):
        images, labels = tiny_mnist(n, seed=n)
        for name, array in zip(mnist.FILES[split], (images, labels)):
            raw = clean_env / name
            idx.write_idx(raw, array)
            body = gzip.compress(raw.read_bytes())
            s.files[name + ".gz"] = body
            sums[name + ".gz"] = hashlib.md5(body).hexdigest()
    for variant in mnist.VARIANTS:
        monkeypatch.setitem(mnist.CHECKSUMS, variant, dict(sums))
        monkeypatch.setenv(mnist.MIRROR_ENV[variant], s.url)
    yield s
    s.close()


def cache_files(variant="mnist"):
    directory = mnist.cache_directory(variant)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_download_verifies_and_writes_into_the_cache(server):
    X, y = load_mnist("train", download=True)
    assert X.shape == (6, 784) and len(y) == 6
    assert cache_files() == sorted(n + ".gz" for n in mnist.FILES["train"])
    assert load_mnist("train")[0].shape == (6, 784)  # now found without downloading
    from fastmlp.files import umask
    path = os.path.join(mnist.cache_directory("mnist"), cache_files()[0])
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask()
    server.requests.clear()
    paths = mnist.download_mnist("mnist", progress=False)  # only the two missing files
    assert sorted(server.requests) == sorted(n + ".gz" for n in mnist.FILES["test"])
    assert [os.path.basename(p) for p in paths] == [n + ".gz" for n in NAMES]


def test_checksum_mismatch_keeps_nothing(server):
    server.files["train-images-idx3-ubyte.gz"] += b"tampered"
    with pytest.raises(DownloadError, match="train-images-idx3-ubyte.gz.*checksum mismatch"):
        load_mnist("train", download=True)
    assert cache_files() == []


def test_interrupted_transfer_keeps_nothing(server):
    server.short.add("train-labels-idx1-ubyte.gz")
    with pytest.raises(DownloadError, match="interrupted after"):
        mnist.download_mnist("fashion", splits=("train",), progress=False)
    # The images, which arrived whole, are kept; the half-sent labels are not.
    assert cache_files("fashion") == ["train-images-idx3-ubyte.gz"]


def test_next_mirror_is_tried(server, tmp_path):
    dead = "http://127.0.0.1:9/"  # discard port: connection refused
    paths = mnist.download_mnist("mnist", tmp_path / "dl", splits=("test",),
                                 mirrors=[dead, server.url], progress=False)
    assert all(os.path.isfile(p) for p in paths)
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        mnist.download_mnist("mnist", tmp_path / "dl2", mirrors=[dead], progress=False)
    assert not (tmp_path / "dl2").exists()


def test_download_into_path(server, tmp_path):
    X, _ = load_mnist("test", variant="fashion", path=tmp_path / "here", download=True)
    assert X.shape == (4, 784) and cache_files("fashion") == []
    assert len(os.listdir(tmp_path / "here")) == 2


# -- load_table ------------------------------------------------------------------------------

def test_csv_with_string_labels(tmp_path):
    pytest.importorskip("pandas", reason="pip install 'fastmlp[data]'")
    (tmp_path / "t.csv").write_text("a,species,b\n1,cat,2.5\n3,dog,4\n5,cat,6\n")
    X, y = datasets.load_table(tmp_path / "t.csv", "species")
    np.testing.assert_array_equal(X, [[1, 2.5], [3, 4], [5, 6]])
    assert list(y) == ["cat", "dog", "cat"]
    with pytest.raises(ValueError, match="'species'.* not numeric.*get_dummies"):
        datasets.load_table(tmp_path / "t.csv", "a")
    with pytest.raises(ValueError, match="no column 'kind'; its columns are 'a', 'species'"):
        datasets.load_table(tmp_path / "t.csv", "kind")


def test_parquet_and_tsv(tmp_path):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pandas.DataFrame({"x1": [0.5, 1.5], "x2": [1, 2], "label": [10, 20]})
    frame.to_parquet(tmp_path / "t.parquet")
    X, y = datasets.load_table(tmp_path / "t.parquet", "label")
    np.testing.assert_array_equal(X, [[0.5, 1], [1.5, 2]])
    assert list(y) == [10, 20]
    frame.to_csv(tmp_path / "t.tsv.gz", sep="\t", index=False)
    X2, y2 = datasets.load_table(tmp_path / "t.tsv.gz", "label")
    np.testing.assert_array_equal(X2, X)
    X3, y3 = datasets.load_table(tmp_path / "t.parquet")
    assert X3.shape == (2, 3) and y3 is None
    X4, y4 = datasets.load_table(tmp_path / "t.parquet", -1)  # a column by position
    np.testing.assert_array_equal(X4, X)
    assert list(y4) == [10, 20]


def test_npy_is_memory_mapped(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "t.npy", table)
    X, y = datasets.load_table(tmp_path / "t.npy")
    assert isinstance(X, np.memmap) and y is None
    X, y = datasets.load_table(tmp_path / "t.npy", -1)
    np.testing.assert_array_equal(X, table[:, :2])
    np.testing.assert_array_equal(y, table[:, 2])
    with pytest.raises(ValueError, match="column index"):
        datasets.load_table(tmp_path / "t.npy", "y")
    with pytest.raises(ValueError, match="out of range"):
        datasets.load_table(tmp_path / "t.npy", 3)


def test_npz_named_arrays(tmp_path):
    X = np.ones((3, 2))
    np.savez(tmp_path / "t.npz", X=X, y=np.array(["a", "b", "a"]))
    X2, y = datasets.load_table(tmp_path / "t.npz", "y")
    np.testing.assert_array_equal(X2, X)
    assert list(y) == ["a", "b", "a"]
    np.testing.assert_array_equal(datasets.load_table(tmp_path / "t.npz")[0], X)
    with pytest.raises(ValueError, match="no target array 'labels'"):
        datasets.load_table(tmp_path / "t.npz", "labels")
    np.savez(tmp_path / "u.npz", a=X, b=X)
    with pytest.raises(ValueError, match="name the features 'X'"):
        datasets.load_table(tmp_path / "u.npz")


def test_table_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the format"):
        datasets.load_table(tmp_path / "t.xlsx", "y")
    pytest.importorskip("pandas", reason="pip install 'fastmlp[data]'")
    with pytest.raises(FileNotFoundError, match="no such data file"):
        datasets.load_table(tmp_path / "t.csv", "y")
    (tmp_path / "t.csv").write_text("a,y\n1,\n2,x\n")
    with pytest.raises(ValueError, match="target column 'y'.* 1 missing"):
        datasets.load_table(tmp_path / "t.csv", "y")
    with pytest.raises(TypeError, match="target must be"):
        datasets.load_table(tmp_path / "t.csv", 1.5)
    (tmp_path / "h.csv").write_text("a,y\n")
    with pytest.raises(ValueError, match="no data rows"):
        datasets.load_table(tmp_path / "h.csv", "y")


def test_missing_pandas_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text("a,y\n1,2\n")
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)  # import pandas fails
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[data\]'"):
        datasets.load_table(tmp_path / "t.csv", "y")
