"""Kernels compiled ahead of time and shipped (cpu/ship.py builds them, core/jitcache.py loads
them): a fresh process loads them and compiles nothing, gets the numbers a compile for its
own CPU gets (up to the last bits: another instruction choice), and never uses kernels it
cannot trust."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastmlp.core import jitcache
from fastmlp.core import shipped as shipped_kernels
from fastmlp.cpu import ship

ROOT = os.path.dirname(jitcache.PACKAGE_DIR)

needs_target = pytest.mark.skipif(
    not ship.can_run_target(),
    reason=f"this CPU cannot run {ship.TARGET} code, so nothing can be shipped here")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The "predict" workload's kernels, built for the target (a few seconds)."""
    if not ship.can_run_target():
        pytest.skip(f"this CPU cannot run {ship.TARGET} code")
    out = tmp_path_factory.mktemp("kernels") / "_kernels"
    manifest = ship.build(str(out), ["predict"], jobs=1, log=lambda line: None)
    assert manifest is not None and manifest["files"] > 0
    return out


@pytest.fixture
def use_shipped(monkeypatch):
    """The shipped kernels allowed in this process (FASTMLP_SHIPPED_KERNELS=0 may have
    turned them off), and the manifest checks forgotten before and after."""
    monkeypatch.setattr(jitcache, "load_first", shipped_kernels.load_shipped)
    shipped_kernels._shipped.cache_clear()
    yield
    shipped_kernels._shipped.cache_clear()


PREDICT = """
import json, sys
import numpy as np
import fastmlp
from fastmlp.bench.compile import fastmlp_dispatchers
model = fastmlp.MLP(4, [(3, "tanh"), (2, "softmax")], dtype="float64", seed=0)
out = model.forward(np.linspace(-1, 1, 40).reshape(10, 4))
stats = [d.stats for d in fastmlp_dispatchers() if d.overloads]
print(json.dumps({"out": out.tolist(),
                  "hits": sum(sum(s.cache_hits.values()) for s in stats),
                  "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
"""


def _predict(tmp_path, name, shipped_dir, use):
    env = dict(os.environ, FASTMLP_SHIPPED_KERNELS="1" if use else "0",
               FASTMLP_KERNELS_DIR=str(shipped_dir), NUMBA_CACHE_DIR=str(tmp_path / name),
               FASTMLP_CACHE_DIR=str(tmp_path / f"{name}-other"), FASTMLP_COMPILE_AHEAD="0",
               PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", PREDICT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def test_a_fresh_process_loads_the_shipped_kernels_and_compiles_nothing(shipped, tmp_path):
    loaded = _predict(tmp_path, "empty-cache", shipped, use=True)
    assert loaded["misses"] == 0 and loaded["hits"] > 0
    assert not any(name.endswith(".nbc") for _, _, names in os.walk(tmp_path / "empty-cache")
                   for name in names)  # nothing compiled, so nothing written
    compiled = _predict(tmp_path, "own-cpu", shipped, use=False)
    assert compiled["misses"] > 0
    np.testing.assert_allclose(loaded["out"], compiled["out"], rtol=1e-13, atol=0)


@pytest.mark.parametrize("damage", [".nbc", ".nbi"])
def test_a_damaged_shipped_file_compiles_instead_and_warns(shipped, tmp_path, damage):
    copy = tmp_path / "_kernels"
    shutil.copytree(shipped, copy)
    damaged = [p for p in copy.rglob(f"*{damage}")]
    assert damaged
    for path in damaged:
        path.write_bytes(path.read_bytes()[:-7] + b"garbage")  # same length, other bytes
    run = _predict(tmp_path, "damaged", copy, use=True)
    assert run["misses"] > 0
    assert "shipped kernel file" in run["stderr"] and "cannot be used" in run["stderr"]
    compiled = _predict(tmp_path, "own-cpu", shipped, use=False)
    np.testing.assert_allclose(run["out"], compiled["out"], rtol=1e-13, atol=0)


@needs_target
def test_the_manifest_lists_every_file_it_ships_by_sha256(shipped, use_shipped):
    manifest = shipped_kernels.shipped_manifest(str(shipped))
    files = {os.path.relpath(os.path.join(here, name), shipped)
             for here, _, names in os.walk(shipped) for name in names
             if name != shipped_kernels.MANIFEST}
    assert set(manifest["sha256"]) == files
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((shipped / name).read_bytes()).hexdigest() == digest


@needs_target
def test_the_manifest_says_what_the_kernels_were_built_from(shipped, use_shipped):
    manifest = shipped_kernels.shipped_manifest(str(shipped))
    assert manifest is not None, shipped_kernels.why_not_shipped(str(shipped))
    assert manifest["numba"] == numba.__version__
    assert manifest["sources"] == jitcache.source_digest()
    assert manifest["target"] == ship.TARGET and manifest["magic"][1] == ship.TARGET
    assert manifest["workloads"] == ["predict"]


@needs_target
@pytest.mark.parametrize("key, value", [
    ("numba", "0.1.0"), ("python", "cpython-27"), ("sources", "0" * 64),
    ("blas", ["libother.so", [0, 0, 1]]), ("format", 0),
    ("requires", list(ship.REQUIRES) + ["no-such-feature"]),
])
def test_kernels_built_otherwise_are_never_used(shipped, use_shipped, tmp_path, key, value):
    copy = tmp_path / "_kernels"
    shutil.copytree(shipped, copy)
    manifest = json.loads((copy / shipped_kernels.MANIFEST).read_text())
    manifest[key] = value
    (copy / shipped_kernels.MANIFEST).write_text(json.dumps(manifest))
    assert shipped_kernels.shipped_manifest(str(copy)) is None
    assert key in shipped_kernels.why_not_shipped(str(copy)) or "sources" in key \
        or "lacks no-such-feature" in shipped_kernels.why_not_shipped(str(copy))


@needs_target
def test_a_directory_without_its_manifest_is_never_used(shipped, use_shipped, tmp_path):
    copy = tmp_path / "_kernels"
    shutil.copytree(shipped, copy)
    os.unlink(copy / shipped_kernels.MANIFEST)
    assert shipped_kernels.shipped_manifest(str(copy)) is None
    assert "none were shipped" in shipped_kernels.why_not_shipped(str(copy))


@needs_target
def test_switched_off_or_told_another_cpu_they_are_not_used(shipped, use_shipped, monkeypatch):
    assert shipped_kernels.shipped_manifest(str(shipped)) is not None
    monkeypatch.setattr(numba.config, "CPU_NAME", "generic")
    shipped_kernels._shipped.cache_clear()
    assert shipped_kernels.shipped_manifest(str(shipped)) is None
    monkeypatch.setattr(numba.config, "CPU_NAME", None)
    monkeypatch.setattr(jitcache, "load_first", None)
    shipped_kernels._shipped.cache_clear()
    assert "turned off" in shipped_kernels.why_not_shipped(str(shipped))


def test_status_says_why_and_exits_1_when_not_used(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        ship.main(["--status", str(tmp_path)])
    assert stopped.value.code == 1
    assert "not used" in capsys.readouterr().out


def test_a_machine_that_cannot_run_the_target_ships_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(ship, "REQUIRES", ship.REQUIRES + ("no-such-feature",))
    lines = []
    assert ship.build(str(tmp_path / "out"), ["predict"], log=lines.append) is None
    assert not (tmp_path / "out").exists()
    assert "cannot run" in lines[0]


def test_an_unknown_workload_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="unknown workloads.*no-such"):
        ship.build(str(tmp_path / "out"), ["no-such"])
    assert not (tmp_path / "out").exists()


def test_the_stamp_is_the_sources_text_not_their_times():
    """An install rewrites every file's time; the shipped index files must still match."""
    from fastmlp.cpu import steps
    locator = steps.train_steps._cache._impl.locator
    with open(locator._py_file, "rb") as f:
        own = hashlib.sha256(f.read()).hexdigest()
    assert locator.get_source_stamp()[:2] == (own, jitcache.source_digest())


def test_package_kernels_look_in_the_shipped_kernels_first():
    from fastmlp.cpu import parallel, steps
    for kernel in (steps.train_steps, steps.evaluate_rows, parallel.team_steps):
        assert isinstance(kernel._cache, jitcache.PackageFunctionCache)
