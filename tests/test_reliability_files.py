"""Model files a user or an adversary edited: load checks every stored array and the file's
classes against what they must be, before a fit could crash or silently mislead."""
import json
import os
import pickle
import subprocess
import time
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import io


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    model = fastmlp.MLP(3, [(4, "relu"), (3, "softmax")], seed=0)
    model.fit(X, np.arange(30) % 3, epochs=2, progress=False)
    path = tmp_path / "m.npz"
    model.save(path)
    return path


def _rewrite(path, change_meta=None, **arrays):
    """path's file with some arrays (or its meta) replaced."""
    meta, stored = io.read(path)
    stored.update(arrays)
    if change_meta is not None:
        change_meta(meta)
    meta.pop("format"), meta.pop("version")
    io.write(path, meta, stored)


@pytest.mark.parametrize("name,value,message", [
    ("perm", lambda p: np.where(p == 0, 10**6, p), "not a permutation"),
    ("perm", lambda p: -1 - p, "not a permutation"),
    ("perm", lambda p: np.zeros_like(p), "not a permutation"),
    ("perm", lambda p: p.astype(np.float64), "1-D integer array"),
    ("opt_step", lambda s: -s, "step count is negative"),
    # the kernels' next step overflowed int64; fit then blamed the learning rate
    ("opt_step", lambda s: np.full_like(s, np.iinfo(np.int64).max), "beyond any training"),
    ("moment2", lambda m: -1 - m, "second moments are negative"),
    ("moment2", lambda m: np.full_like(m, np.nan), "second moments contain NaN"),
    ("moment1", lambda m: np.full_like(m, np.inf), "first moments contain NaN"),
    ("rng", lambda r: np.zeros_like(r), "RNG state is zero"),
])
def test_load_refuses_stored_arrays_that_cannot_be(saved, name, value, message):
    _, arrays = io.read(saved)
    _rewrite(saved, **{name: value(arrays[name])})
    with pytest.raises(ValueError, match=message):
        fastmlp.MLP.load(saved)


@pytest.mark.parametrize("classes,message", [
    (["a", "b"], "2 classes but its output layer has 3"),
    (["a", "b", "c", "d"], "4 classes but its output layer has 3"),
    ({"a": 1}, "must be a list of labels"),
    ([["a"], ["b"], ["c"]], "must be a list of labels"),
    (["a", "a", "b"], "a label twice"),
    ([float("nan"), 1.0, 2.0], "hold nan, not a finite label"),
    ([0.0, float("inf"), 2.0], "hold inf, not a finite label"),
])
def test_load_checks_the_classes_against_the_output_layer(saved, classes, message):
    if any(isinstance(c, float) for c in classes):  # io.write refuses NaN: write by hand
        with np.load(saved) as f:
            entries = {name: f[name] for name in f.files}
        meta = json.loads(str(entries["meta"]))
        meta["classes"] = classes
        entries["meta"] = np.array(json.dumps(meta))
        with open(saved, "wb") as f:
            np.savez(f, **entries)
    else:
        _rewrite(saved, change_meta=lambda meta: meta.update(classes=classes))
    with pytest.raises(ValueError, match=message):
        fastmlp.MLP.load(saved)


def test_a_good_file_still_loads_and_continues(saved):
    model = fastmlp.MLP.load(saved)
    _rewrite(saved, change_meta=lambda meta: meta.update(classes=["x", "y", "z"]))
    assert list(fastmlp.MLP.load(saved).classes_) == ["x", "y", "z"]
    X = np.random.default_rng(1).normal(size=(30, 3))
    model.fit(X, np.arange(30) % 3, epochs=1, progress=False)


# -- numba's own index files in the kernel cache ---------------------------------------------

def _index(path, version, payload):
    with open(path, "wb") as f:
        pickle.dump(version, f)
        f.write(payload)


def test_heal_removes_only_unreadable_index_files(tmp_path):
    import numba
    from fastmlp.core import jitcache
    whole = pickle.dumps(("stamp", {}))
    _index(tmp_path / "good.nbi", numba.__version__, whole)
    _index(tmp_path / "cut.nbi", numba.__version__, whole[:len(whole) // 2])
    _index(tmp_path / "other.nbi", "0.1.0", b"\x80garbage")  # another numba's: not ours
    (tmp_path / "empty.nbi").write_bytes(b"")
    (tmp_path / "k.1.nbc").write_bytes(b"data")
    jitcache.heal.__wrapped__(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.nbi", "k.1.nbc", "other.nbi"]


RUN = ("import numpy as np, fastmlp; "
       "m = fastmlp.MLP(2, [(3, 'tanh'), (1, 'sigmoid')], seed=0); "
       "print(m.forward(np.ones((2, 2)))[0, 0])")


def test_a_truncated_numba_index_heals_itself(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FASTMLP_SHIPPED_KERNELS="0",
               PYTHONPATH=os.path.dirname(os.path.dirname(fastmlp.__file__)))
    first = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    indexes = list(tmp_path.rglob("*.nbi"))
    assert indexes
    for path in indexes:
        path.write_bytes(path.read_bytes()[:20])
    for _ in range(2):  # healed, then the new index is whole
        again = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                               text=True, timeout=600)
        assert again.returncode == 0 and again.stdout == first.stdout, again.stderr[-2000:]


# -- IDX files: the header first, then a stream ----------------------------------------------

def _gzip_idx(path, shape, body_bytes):
    """A .gz IDX images file whose header says `shape` but which holds body_bytes zeros."""
    import gzip
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        zeros = bytes(1 << 20)
        for _ in range(body_bytes >> 20):
            f.write(zeros)


def test_an_idx_gz_holding_far_more_than_its_header_is_not_read_whole(tmp_path):
    import tracemalloc
    from fastmlp.datasets import idx
    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_idx(path, (10, 28, 28), 256 << 20)  # 7,840 bytes claimed, 256 MiB inside
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="longer than its header says"):
            idx.read_idx(path, idx.IMAGES_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_an_idx_gz_claiming_more_than_it_can_hold_is_refused_before_reading(tmp_path):
    from fastmlp.datasets import idx
    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_idx(path, (60000, 2000, 2000), 0)  # 240 GB claimed by a file of a few bytes
    with pytest.raises(ValueError, match="truncated: its header .* more than this"):
        idx.read_idx(path, idx.IMAGES_MAGIC)


# -- downloads: bounded bytes and time, nothing left behind ----------------------------------

class Mirror:
    """A local HTTP server that misbehaves by path: 'forever' streams without end, 'liar'
    announces a gigabyte, 'trickle' sends a byte every 50 ms; anything else is 404."""

    def __init__(self):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                how = self.path.strip("/").split("/")[0]
                if how not in ("forever", "liar", "trickle"):
                    self.send_error(404)
                    return
                self.send_response(200)
                if how == "liar":
                    self.send_header("Content-Length", str(10**9))
                self.end_headers()
                try:
                    for _ in range(10**6):
                        self.wfile.write(bytes(1 << 16) if how != "trickle" else b"x")
                        if how == "trickle":
                            self.wfile.flush()
                            time.sleep(0.05)
                except OSError:
                    pass  # the client hung up, as it should
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = Mirror()
    yield server
    server.close()


@pytest.mark.parametrize("how,message", [("forever", "sent more than"),
                                         ("liar", "announces 1000000000 bytes"),
                                         ("trickle", "too slow")])
def test_downloads_are_bounded_in_bytes_and_time(mirror, tmp_path, monkeypatch, how,
                                                 message):
    from fastmlp.datasets import mnist
    monkeypatch.setattr(mnist, "MAX_DOWNLOAD_BYTES", 4 << 20)
    monkeypatch.setattr(mnist, "DOWNLOAD_SECONDS", 1.0)
    start = time.monotonic()
    with pytest.raises(mnist.DownloadError, match=message):
        mnist.download_mnist("mnist", tmp_path / "a" / "b" / "c", splits=("test",),
                             mirrors=[mirror.url + how], progress=False)
    assert time.monotonic() - start < 20
    assert list(tmp_path.iterdir()) == []  # no .part, and not the directories it made


def test_a_present_file_with_the_wrong_checksum_is_fetched_again(tmp_path, monkeypatch):
    import hashlib
    from fastmlp.datasets import mnist
    good = b"the published labels"
    names = [n + ".gz" for n in mnist.FILES["test"]]
    monkeypatch.setitem(mnist.CHECKSUMS, "mnist", {n: hashlib.md5(good).hexdigest()
                                                   for n in names})
    (tmp_path / names[0]).write_bytes(good)
    (tmp_path / names[1]).write_bytes(b"a half-written or tampered file")
    fetched = []

    def download_one(variant, name, target, mirrors, progress):
        fetched.append(name)
        with open(target, "wb") as f:
            f.write(good)

    monkeypatch.setattr(mnist, "_download_one", download_one)
    mnist.download_mnist("mnist", tmp_path, splits=("test",), progress=False)
    assert fetched == [names[1]] and (tmp_path / names[1]).read_bytes() == good


SIGTERM_RUN = """
import sys
from fastmlp.datasets import mnist
mnist.download_mnist("mnist", sys.argv[1], splits=("test",), mirrors=[sys.argv[2]],
                     progress=False)
"""


def test_sigterm_during_a_download_leaves_no_part_file(mirror, tmp_path):
    import signal
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastmlp.__file__)),
               no_proxy="127.0.0.1,localhost")
    target = tmp_path / "dl"
    process = subprocess.Popen([sys.executable, "-c", SIGTERM_RUN, str(target),
                                mirror.url + "trickle"], env=env)
    deadline = time.monotonic() + 60
    while not (target.is_dir() and any(p.suffix == ".part" for p in target.iterdir())):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert not target.exists()
