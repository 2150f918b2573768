"""benchmarks/gpu/check.py, the one command for a GPU machine, run here with --simulate (its
own logic in Numba's CUDA simulator, tiny sizes): every stage it can run passes, the others
say why they did not run, the folder gets only its seven files, and a time limit stops it
cleanly. Plus its pieces that need no run: time shares, the sanitizer's verdicts, pytest's
counts, and the GPU peers' code (on the CPU)."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPU_DIR = os.path.join(ROOT, "benchmarks", "gpu")
CHECK = os.path.join(GPU_DIR, "check.py")
FILES = {"summary.json", "env.log", "fit.log", "tests.log", "sanitizer.log", "bench.log",
         "bench.json"}


@pytest.fixture(scope="module")
def gpu_modules():
    sys.path.insert(0, GPU_DIR)
    import bench_cuda
    import check
    import peers
    import stages
    yield check, stages, peers, bench_cuda
    sys.path.remove(GPU_DIR)


def run_check(outdir, *args, timeout, **extra_env):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(extra_env)
    start = time.monotonic()
    result = subprocess.run([sys.executable, CHECK, str(outdir), "--simulate", *args],
                            capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=timeout)
    with open(outdir / "summary.json") as f:
        summary = json.load(f)
    return result, summary, time.monotonic() - start


def test_simulated_check_runs_what_it_can_and_says_why_not_the_rest(tmp_path):
    result, summary, _ = run_check(tmp_path, timeout=400)  # the default limit, 240 s, and
    # under a minute when the CPU kernels are in Numba's cache already
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    status = {s["name"]: (s["status"], s.get("reason", "")) for s in summary["stages"]}
    for name in ("env", "fit", "tests", "bench"):
        assert status[name][0] == "ok", status
    assert status["install"] == ("skipped", "--simulate leaves the installed packages alone")
    assert status["memcheck"] == ("skipped", "no sanitizer in the simulator")
    assert status["racecheck"][0] == "skipped"
    tests = next(s for s in summary["stages"] if s["name"] == "tests")
    assert tests["counts"]["passed"] >= 2 and not tests["failures"]
    fit = next(s for s in summary["stages"] if s["name"] == "fit")
    assert [line.split()[0] for line in fit["fits"]] == ["fused-steps", "fused", "tiled"]
    assert summary["simulate"] and summary["gpu"] == "simulator"
    assert summary["versions"]["numba"] and summary["exit_status"] == 0
    # The device tool brings back at most 8 plainly named files: the folder holds no more.
    names = set(os.listdir(tmp_path))
    assert names <= FILES and all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    with open(tmp_path / "bench.json") as f:
        bench = json.load(f)
    xor = bench["workloads"]["xor"]["fastmlp"]
    assert xor["path"] == "fused-steps" and xor["steps_per_s"] > 0
    assert "stage      status" in result.stdout and "fused-steps" in result.stdout


def test_a_time_limit_stops_the_check_cleanly(tmp_path):
    """fit_check (stalled, so that warm caches cannot make it fast) needs longer than its
    share of 20 s: it is stopped at its share, recorded, and the run ends within the limit
    with status 1."""
    result, summary, elapsed = run_check(tmp_path, "--time-limit", "20", "--only",
                                         "fit,tests", timeout=120, FASTMLP_CHECK_STALL="60")
    assert result.returncode == 1
    assert elapsed < 20 + 10  # the limit, plus starting Python and killing children
    stages = {s["name"]: s for s in summary["stages"]}
    assert stages["fit"]["status"] == "timeout" and "budget" in stages["fit"]["reason"]
    assert stages["fit"]["seconds"] <= stages["fit"]["budget_s"] + 6
    assert stages["tests"]["status"] in ("timeout", "ok", "skipped")
    assert stages["env"] == {"name": "env", "status": "skipped", "reason": "not in --only"}
    assert summary["exit_status"] == 1 and summary["finished"]


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    for args in (["--only", "tests,bogus"], ["--time-limit", "1"]):
        result = subprocess.run([sys.executable, CHECK, str(tmp_path / "out"), *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "check.py: error:" in result.stderr
        assert not (tmp_path / "out").exists()


def test_time_is_shared_by_weight_over_the_stages_left(gpu_modules):
    check, _, _, _ = gpu_modules
    weights = {"a": 10, "b": 30, "c": 60}
    assert check.share(100, weights, ["a", "b", "c"]) == pytest.approx(10)
    assert check.share(100, weights, ["b", "c"]) == pytest.approx(100 / 3)
    assert check.share(50, weights, ["c"]) == pytest.approx(50)


@pytest.mark.parametrize("rc,text,status", [
    (0, "========= ERROR SUMMARY: 0 errors\n", "ok"),
    (86, "========= Invalid __shared__ write of size 4\n========= ERROR SUMMARY: 3 errors",
     "failed"),
    (86, "========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings)", "failed"),
    (255, "========= Error: Device not supported\n", "refused"),
    (1, "Traceback ...\nfit_check: 1 of the fits differ from the CPU beyond tolerance\n",
     "failed"),
])
def test_sanitizer_verdicts(gpu_modules, rc, text, status):
    _, stages, _, _ = gpu_modules
    verdict = stages.sanitizer_verdict(rc, False, text, "memcheck", 40)
    assert verdict["status"] == status
    if status == "refused":
        assert "Device not supported" in verdict["reason"]
    timeout = stages.sanitizer_verdict(None, True, text, "racecheck", 40)
    assert timeout["status"] == "timeout" and "40 s" in timeout["reason"]


def test_pytest_counts(gpu_modules):
    _, stages, _, _ = gpu_modules
    text = "tests/cuda/test_a.py::test_b PASSED\n==== 3 failed, 120 passed, 2 deselected " \
           "in 98.20s ====\n"
    assert stages.pytest_counts(text) == {"failed": 3, "passed": 120, "deselected": 2}
    assert stages.pytest_counts("no summary") == {}


def test_gpu_peers_run_their_code_on_the_cpu(gpu_modules):
    """The PyTorch and JAX peers train each workload's network; here on the CPU, briefly."""
    pytest.importorskip("torch", reason="PyTorch is the `reference` extra")
    _, _, peers, _ = gpu_modules
    from fastmlp.bench.workloads import WORKLOADS
    assert peers.torch_cuda_rate(WORKLOADS["x2"], 0.01, 1, device="cpu") > 0
    pytest.importorskip("optax", reason="JAX and optax are the `peers` extra: pip install "
                                        "'fastmlp[peers]'")
    assert peers.jax_gpu_rate(WORKLOADS["xor"], 0.01, 1, platform="cpu") > 0


def test_gpu_bench_runs_every_workload_but_the_one_that_needs_files(gpu_modules):
    """On an H100 (2026-12-06) the bench stage died at the fashion workload, whose files a
    GPU machine lacks: by default it runs the four synthetic ones, and refuses fashion."""
    bench_cuda = gpu_modules[3]

    def error(message):
        raise ValueError(message)

    assert bench_cuda.workload_names(None, error) == ["xor", "x2", "mnist-small",
                                                      "mnist-wide"]
    assert bench_cuda.workload_names(["x2"], error) == ["x2"]
    with pytest.raises(ValueError, match="unknown workload.*fashion"):
        bench_cuda.workload_names(["fashion"], error)
