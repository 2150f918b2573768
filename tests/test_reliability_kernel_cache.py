"""A damaged file in the generated-kernel cache (cpu/specialize.py) is noticed and replaced,
instead of failing every later fit of that architecture until the cache is deleted by hand."""
import os
import tempfile

import numpy as np
import pytest

import fastmlp
from fastmlp.cpu import specialize

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([0, 1, 1, 0])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty kernel cache in tmp_path, and no generated module loaded yet."""
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the fallback directory
    os.makedirs(tmp_path / "tmp")
    monkeypatch.setattr(specialize, "_loaded", {})
    return tmp_path / "cache" / "kernels"


def _fit():
    model = fastmlp.MLP(2, [(2, "relu"), (1, "sigmoid")], optimizer=fastmlp.SGD(lr=0.5),
                        seed=0)
    history = model.fit(X, Y, epochs=3, batch_size=4, progress=False)
    return model, history


def _sources(directory):
    return sorted(p for p in directory.glob("fastmlp_kernel_*.py"))


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_damaged_cached_kernel_is_regenerated(cache, damage):
    reference, history = _fit()
    (path,) = _sources(cache)
    source = path.read_text()
    text = {"truncate": source[: len(source) // 2], "empty": "",
            "garbage": "\udcff not python"}[damage]
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    specialize._loaded.clear()  # a new process: the module is loaded from the file again
    model, again = _fit()
    assert path.read_text() == source
    np.testing.assert_array_equal(again.loss, history.loss)
    np.testing.assert_array_equal(model.forward(X), reference.forward(X))
    assert [p.name for p in cache.iterdir() if p.suffix == ".tmp"] == []


def test_a_damaged_file_in_a_read_only_cache_falls_back_to_the_temp_dir(cache, monkeypatch):
    _fit()
    (path,) = _sources(cache)
    path.write_text("def train_steps(")
    specialize._loaded.clear()
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir == str(cache):
            raise PermissionError(13, "Permission denied", dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    _fit()
    fallback = _sources(cache.parent.parent / "tmp" / f"fastmlp-{os.getuid()}")
    assert [p.name for p in fallback] == [path.name]


@pytest.mark.parametrize("which", ["nbi", "nbc"])
def test_a_damaged_numba_cache_entry_is_compiled_again(cache, which):
    reference, history = _fit()
    damaged = list((cache / "__pycache__").glob(f"fastmlp_kernel_*.{which}"))
    assert damaged
    for path in damaged:
        path.write_bytes(path.read_bytes()[:100])
    specialize._loaded.clear()  # a new process: the generated module and numba's cache load
    model, again = _fit()
    np.testing.assert_array_equal(again.loss, history.loss)
    specialize._loaded.clear()  # and the entry was rewritten whole: it loads from now on
    assert _fit()[1].loss.tolist() == history.loss.tolist()
    (kernel,) = specialize._loaded.values()
    assert sum(kernel.stats.cache_hits.values()) == 1
