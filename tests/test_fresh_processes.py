"""What only a fresh process shows: the data-parallel kernel's arithmetic order is fixed
(the same weights, bit for bit, from run to run), and a second process that shares the first
one's caches compiles nothing (numba's dispatcher statistics, tests/fresh_fit.py)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fresh_fit(mode, **env):
    """tests/fresh_fit.py's JSON record of one fit in a new interpreter."""
    environ = dict(os.environ, **env)
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-m", "tests.fresh_fit", mode], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_threads_give_the_same_weights_in_every_fresh_process():
    runs = [fresh_fit("parallel") for _ in range(3)]
    for run in runs:
        assert run["path"] == "parallel", run["path"]
        assert run["threads"] == [2]  # every call ran both parts at once
    assert len({run["weights"] for run in runs}) == 1, [run["weights"] for run in runs]


@pytest.mark.parametrize("mode", ["small", "parallel"])
def test_a_second_process_sharing_the_caches_compiles_nothing(tmp_path, mode):
    cache = str(tmp_path)
    first = fresh_fit(mode, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache)
    second = fresh_fit(mode, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache)
    assert first["compiled"] and not first["loaded"]  # the caches really started empty
    assert second["compiled"] == [], second["compiled"]
    assert second["loaded"]
    assert second["weights"] == first["weights"]
