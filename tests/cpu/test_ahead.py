"""Compiling ahead (cpu/ahead.py): the helper process compiles exactly the overloads a
model's first inference calls, it starts only where it can help, a first inference waits
for it, and no helper outlives its parent; and the cache files two processes write at once
(core/jitcache.LockedIndexDataCacheFile) keep both entries."""
import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.core import jitcache
from fastmlp.core.spec import NetworkSpec
from fastmlp.cpu import ahead, parallel, threads
from fastmlp.cpu import steps as cpu_steps
from fastmlp.cpu.backend import CpuBackend
from fastmlp.inputs.validation import for_kernels
from tests.test_fresh_processes import ROOT, fresh_fit


def signatures(calls):
    return [(kernel, tuple(numba.typeof(a) for a in jitcache._target(kernel, args)[1]))
            for kernel, args in calls]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_inference_overloads_depend_on_the_dtype_alone(dtype):
    """The premise of a helper that compiles for a network of its own."""
    helper = signatures(CpuBackend(NetworkSpec(1, [(1, "identity")]), dtype)
                        .inference_calls(split=True))
    for n_inputs, layers in [(784, [(256, "relu"), (10, "softmax")]),
                             (3, [(5, "tanh"), (4, "leaky_relu"), (1, "sigmoid")])]:
        backend = CpuBackend(NetworkSpec(n_inputs, layers), dtype)
        assert signatures(backend.inference_calls(split=True)) == helper


def test_inference_calls_are_the_calls_inference_makes(monkeypatch):
    """The arguments' types of every inference kernel call (predict on many rows split over
    parts, on a few rows, the loss) are those inference_calls names."""
    monkeypatch.setattr(config, "CPU_THREADS", 2)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    model = fastmlp.MLP(64, [(64, "relu"), (10, "softmax")], dtype="float32", seed=0)
    named = dict(signatures(model.backend.inference_calls(split=True)))
    made = []

    def recorder(kernel):
        def call(*args, **kwargs):
            made.append((kernel, args))
            return kernel(*args, **kwargs)
        return call

    monkeypatch.setattr(cpu_steps, "evaluate_rows", recorder(cpu_steps.evaluate_rows))
    monkeypatch.setattr(parallel, "forward_parts", recorder(parallel.forward_parts))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((config.PARALLEL_MIN_FORWARD_ROWS, 64))
    model.predict(X)
    model.predict(X[:3])
    model.loss(X[:50], rng.integers(0, 10, 50))
    assert {kernel for kernel, _ in made} == set(named)  # both kernels ran
    for kernel, args in made:
        assert signatures([(kernel, args)])[0][1] == named[kernel], kernel


def test_the_helper_compiles_what_a_first_inference_loads(tmp_path):
    """A helper run into an empty cache, then a fresh process's first predict (many rows
    and few) and loss: it compiles nothing, it loads the kernels."""
    cache = str(tmp_path)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache, PYTHONPATH=ROOT)
    done = subprocess.run(ahead.command("float32", True, None), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first = fresh_fit("inference", NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache)
    assert first["compiled"] == [], first["compiled"]
    assert any("steps.evaluate_rows" in name for name in first["loaded"]), first["loaded"]


class FakeHelper:
    """A stand-in for the helper's Popen: records its command, finishes when told."""
    started = []

    def __init__(self, cmd, **kwargs):
        self.cmd, self.env = cmd, kwargs.get("env")
        self.returncode = None
        self.waits, self.stopped = [], False
        FakeHelper.started.append(self)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if self.returncode is None and timeout is not None and self.cmd[-1] == "hang":
            raise subprocess.TimeoutExpired(self.cmd, timeout)
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode

    def terminate(self):
        self.stopped = True
        self.returncode = -15

    kill = terminate


@pytest.fixture
def fake_helpers(monkeypatch):
    FakeHelper.started = []
    monkeypatch.setattr(ahead.subprocess, "Popen", FakeHelper)
    monkeypatch.setattr(ahead, "_helpers", {})
    monkeypatch.setattr(jitcache, "ready", lambda calls: False)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(config, "COMPILE_AHEAD", True)
    monkeypatch.setattr(config, "CACHE", True)
    return FakeHelper.started


def small_backend(dtype="float32"):
    return CpuBackend(NetworkSpec(4, [(3, "relu"), (2, "softmax")]), dtype)


def test_a_helper_starts_once_for_a_dtype_with_this_package_first(fake_helpers):
    backend = small_backend()
    proc = ahead.start(backend)
    assert fake_helpers == [proc]
    assert proc.cmd[:2] == [sys.executable, "-c"]
    assert proc.cmd[3:] == ["float32", "serial", "none"]  # a small network: one part
    root = os.path.dirname(jitcache.PACKAGE_DIR)
    assert proc.env["PYTHONPATH"].split(os.pathsep)[0] == root
    assert ahead.start(small_backend()) is proc  # running: not a second one
    ahead.start(small_backend("float64"))
    assert [p.cmd[3] for p in fake_helpers] == ["float32", "float64"]


@pytest.mark.parametrize("setting", ["ahead off", "cache off", "one core", "compiled",
                                     "not python"])
def test_no_helper_where_it_cannot_help(fake_helpers, monkeypatch, setting):
    if setting == "ahead off":
        monkeypatch.setattr(config, "COMPILE_AHEAD", False)
    elif setting == "cache off":
        monkeypatch.setattr(config, "CACHE", False)
    elif setting == "one core":
        monkeypatch.setattr(threads, "cores", lambda: 1)
    elif setting == "compiled":
        monkeypatch.setattr(jitcache, "ready", lambda calls: True)
    else:
        monkeypatch.setattr(ahead.sys, "executable", "/usr/bin/uwsgi")
    assert ahead.start(small_backend()) is None
    assert fake_helpers == []


def test_the_environment_switch_turns_it_off():
    script = "from fastmlp import config; print(config.COMPILE_AHEAD)"
    for value, expected in [("0", "False"), ("1", "True")]:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=dict(os.environ, FASTMLP_COMPILE_AHEAD=value), timeout=120)
        assert done.stdout.strip() == expected, done.stderr


def test_a_first_inference_waits_for_the_helper_of_its_dtype(fake_helpers):
    backend = small_backend()
    proc = ahead.start(backend)
    other = ahead.start(small_backend("float64"))
    X = for_kernels(np.zeros((2, 4), np.float32))  # as the model passes it
    backend.forward_rows(X)
    assert proc.waits == [config.COMPILE_AHEAD_WAIT] and proc.returncode == 0
    assert other.waits == []  # another dtype's helper keeps going
    backend.forward_rows(X)
    assert proc.waits == [config.COMPILE_AHEAD_WAIT]  # waited for once


def test_a_helper_past_its_time_is_stopped(fake_helpers, monkeypatch):
    monkeypatch.setattr(ahead, "command", lambda *key: ["python", "hang"])
    proc = ahead.start(small_backend())
    ahead.wait(np.dtype("float32"))
    assert proc.stopped


def test_no_helper_outlives_its_parent(fake_helpers):
    proc = ahead.start(small_backend())
    ahead._stop_all()
    assert proc.stopped and ahead._helpers == {}


def test_a_forked_child_leaves_its_parents_helper_alone(fake_helpers, monkeypatch):
    proc = ahead.start(small_backend())
    monkeypatch.setattr(ahead.os, "getpid", lambda: -1)
    ahead.wait(np.dtype("float32"))
    ahead._stop_all()
    assert proc.waits == [] and not proc.stopped


# -- the cache files two processes write at once -----------------------------------------

def test_every_package_kernel_reads_and_writes_its_cache_under_the_lock():
    from fastmlp.bench.compile import fastmlp_dispatchers
    cached = [d for d in fastmlp_dispatchers() if getattr(d, "_cache", None) is not None
              and hasattr(d._cache, "_cache_file")]
    assert cached
    for d in cached:
        assert type(d._cache._cache_file) is jitcache.LockedIndexDataCacheFile, d


def test_two_writers_of_one_function_keep_both_entries(tmp_path):
    """Writer B saves its entry while writer A is between reading the index and writing it
    (as two processes can): under the lock B waits, then takes the next data file; each key
    loads its own data."""
    def cache_file():
        return jitcache.LockedIndexDataCacheFile(str(tmp_path), "kernel-1.py311", "stamp")

    a, b = cache_file(), cache_file()
    save_index = a._save_index
    other = threading.Thread(target=b.save, args=("key-b", "data-b"))

    def interrupted(overloads):
        other.start()
        time.sleep(0.5)  # B runs now if nothing holds it back
        save_index(overloads)

    a._save_index = interrupted
    a.save("key-a", "data-a")
    other.join(timeout=30)
    reader = cache_file()
    assert reader.load("key-a") == "data-a"
    assert reader.load("key-b") == "data-b"
