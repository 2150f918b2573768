"""The stages of check.py: each takes the Context and its time budget in seconds, runs its
work in subprocesses that are killed (with their whole process group) at that budget, and
returns a dict with a status (ok, failed, timeout, refused or skipped), a reason and what
it found. Logs go to the run's folder; nothing else is written there.
"""
import glob
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PACKAGES = ["numba", "numba-cuda", "llvmlite", "numpy", "scipy", "scikit-learn", "torch",
            "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "optax",
            "cuda-bindings", "cuda-python", "pytest", "fastmlp"]
# The simulator runs these few tests (the GPU runs all of tests/cuda).
SIMULATE_TESTS = ["tests/cuda/test_fused_multistep.py::"
                  "test_a_launch_after_a_failed_step_changes_nothing",
                  "tests/cuda/test_bench.py::test_time_train_steps_on_xor"]
# Tests that need no GPU and that CI runs: compiling to PTX, and this script's own test
# (which runs it with --simulate); on the GPU they would spend its budget.
CI_ONLY_TESTS = ["tests/cuda/test_ptx.py", "tests/cuda/test_check_script.py",
                 "tests/cuda/test_fused_multistep.py::"
                 "test_kernel_compiles_for_sm_90_within_its_shared_memory_estimate"]
TEST_WORKERS = 8     # pytest-xdist processes for tests/cuda on the GPU
TEST_TIMEOUT = 150   # seconds one test may take there (a cold compile takes tens)
SANITIZER_ERRORS = 86  # compute-sanitizer's exit status when it found errors or hazards
REFUSALS = ["device not supported", "not supported on this", "error 999",
            "cuda_error_not_supported", "unable to initialize", "no supported devices",
            "failed to initialize"]

_child = [None]  # the subprocess now running, for stop_child


@dataclass
class Context:
    outdir: str
    simulate: bool
    opened: set = field(default_factory=set)
    no_gpu: str = None  # why the GPU stages cannot run, if they cannot

    def __post_init__(self):
        if not self.simulate and shutil.which("nvidia-smi") is None \
                and not os.path.exists("/dev/nvidia0"):
            self.no_gpu = ("no GPU here: neither nvidia-smi nor /dev/nvidia0 exists (use "
                           "--simulate on a machine without one)")

    def log(self, name):
        """The path of a log in the run's folder; emptied at its first use in this run."""
        path = os.path.join(self.outdir, name)
        if name not in self.opened:
            open(path, "w").close()
            self.opened.add(name)
        return path

    def env(self):
        """The children's environment: this checkout first on the path, the simulator on
        only with --simulate, and JAX kept from taking most of the GPU's memory."""
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if self.simulate:
            env["NUMBA_ENABLE_CUDASIM"] = "1"
        else:
            env.pop("NUMBA_ENABLE_CUDASIM", None)
        return env


def skip_reason(ctx, name):
    """Why stage `name` cannot run in this context (decided before any time is given to
    it), or None."""
    if ctx.simulate and name == "install":
        return "--simulate leaves the installed packages alone"
    if ctx.simulate and name in ("memcheck", "racecheck"):
        return "no sanitizer in the simulator"
    if ctx.no_gpu and name != "env" and name != "install":
        return ctx.no_gpu
    if name in ("memcheck", "racecheck") and sanitizer() is None:
        return "compute-sanitizer not found on PATH or under /usr/local/cuda*, /opt/nvidia"
    return None


def stop_child():
    proc = _child[0]
    if proc is not None and proc.poll() is None:
        _kill_group(proc)


def _kill_group(proc):
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_logged(command, log_path, timeout, env, cwd=ROOT):
    """Run command with output appended to log_path; (exit status, timed out, seconds)."""
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(shlex.quote(str(c)) for c in command)}\n")
        log.flush()
        start = time.monotonic()
        try:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                    env=env, start_new_session=True)
        except OSError as error:
            log.write(f"[could not start: {error}]\n")
            return 127, False, 0.0
        _child[0] = proc
        timed_out = False
        try:
            proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        finally:
            _child[0] = None
        seconds = time.monotonic() - start
        log.write(f"[exit status {proc.returncode} after {seconds:.1f} s"
                  f"{'; stopped at its time budget' if timed_out else ''}]\n")
    return proc.returncode, timed_out, seconds


def tail(path, n=4000):
    with open(path, errors="replace") as f:
        return f.read()[-n:]


def outcome(rc, timed_out, budget, log_name, what):
    if timed_out:
        return {"status": "timeout", "reason": f"{what} stopped at its budget of "
                                               f"{budget:.0f} s; see {log_name}"}
    if rc != 0:
        return {"status": "failed", "reason": f"{what} exited with status {rc}; see "
                                              f"{log_name}"}
    return {"status": "ok", "reason": ""}


# -- env and install ------------------------------------------------------------------
def versions():
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    found["python"] = sys.version.split()[0]
    return found


PROBE = """
from numba import cuda
from numba.core import config
print("numba.cuda:", getattr(cuda, "implementation", "built-in"), "simulator:",
      bool(config.ENABLE_CUDASIM), "available:", cuda.is_available())
if cuda.is_available():
    cuda.detect()
    try:
        from numba.cuda.cudadrv.driver import driver
        from numba.cuda.cudadrv.runtime import runtime
        print("CUDA driver:", driver.get_version(), "runtime:", runtime.get_version())
    except Exception as error:
        print("CUDA versions:", type(error).__name__, error)
"""
TORCH_PROBE = ("import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, "
               "'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) "
               "if torch.cuda.is_available() else '')")
JAX_PROBE = "import jax; print('jax', jax.__version__, jax.devices())"


def stage_env(ctx, budget):
    log = ctx.log("env.log")
    deadline = time.monotonic() + budget
    found = versions()
    with open(log, "a") as f:
        f.write(f"python {sys.executable} {found['python']}\n")
        f.write(json.dumps(found, indent=1) + "\n")
    gpu = None
    commands = [["uname", "-a"], ["sh", "-c", "lscpu | grep 'Model name'"]]
    if ctx.simulate:
        commands.append([sys.executable, "-c", PROBE])
    else:
        query = "name,driver_version,memory.total,compute_cap,clocks.max.sm"
        commands += [["nvidia-smi"], ["nvidia-smi", "-L"],
                     ["nvidia-smi", f"--query-gpu={query}", "--format=csv"],
                     [sys.executable, "-c", PROBE], ["nvcc", "--version"],
                     [sanitizer() or "compute-sanitizer", "--version"],
                     [sys.executable, "-c", TORCH_PROBE], [sys.executable, "-c", JAX_PROBE]]
    for command in commands:
        left = deadline - time.monotonic()
        if left < 1:
            return {"status": "timeout", "reason": "env: out of time before "
                                                   f"{command[0]}", "versions": found}
        run_logged(command, log, left, ctx.env())
    if not ctx.simulate:
        text = tail(log, 40000)
        match = re.search(r"^name, driver_version.*\n(.+)$", text, re.M) \
            or re.search(r"^GPU 0: (.+?)(?: \(UUID.*)?$", text, re.M)
        gpu = match.group(1).strip() if match else None
    if ctx.no_gpu:
        return {"status": "failed", "reason": ctx.no_gpu, "versions": found, "gpu": None}
    return {"status": "ok", "reason": "", "versions": found,
            "gpu": "simulator" if ctx.simulate else gpu}


def stage_install(ctx, budget):
    log = ctx.log("env.log")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
               "--no-index", "-e", ROOT]
    rc, timed_out, _ = run_logged(command, log, budget * 0.8, ctx.env())
    result = outcome(rc, timed_out, budget, "env.log", "pip install")
    if result["status"] != "ok":
        result["reason"] += " (the later stages use this checkout through PYTHONPATH)"
        return result
    env = {k: v for k, v in ctx.env().items() if k != "PYTHONPATH"}
    rc, _, _ = run_logged([sys.executable, "-c", "import fastmlp; print(fastmlp.__file__)"],
                          log, budget * 0.2, env, cwd="/tmp")
    installed = tail(log, 600)
    if rc != 0 or os.path.join(ROOT, "fastmlp") not in installed:
        return {"status": "failed", "reason": "installed, but `import fastmlp` outside the "
                                              "checkout does not find it; see env.log"}
    return {"status": "ok", "reason": "", "fastmlp_command": shutil.which("fastmlp")}


# -- fit, tests, sanitizer, bench --------------------------------------------------------
def stage_fit(ctx, budget):
    log = ctx.log("fit.log")
    command = [sys.executable, os.path.join(HERE, "fit_check.py")]
    command += ["--simulate", "--quick"] if ctx.simulate else []
    result = outcome(*run_logged(command, log, budget, ctx.env())[:2], budget, "fit.log",
                     "fit_check.py")
    result["fits"] = [line.strip() for line in tail(log, 20000).splitlines()
                      if " path " in line]
    return result


def pytest_counts(text):
    """{'passed': n, 'failed': n, ...} from pytest's last summary line."""
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error)",
                                                              line)]
    if not lines:
        return {}
    return {word: int(n) for n, word in re.findall(
        r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", lines[-1])}


def stage_tests(ctx, budget):
    log = ctx.log("tests.log")
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rfEs"]
    if ctx.simulate:
        command += SIMULATE_TESTS
    else:
        command += ["tests/cuda"] + [f"--deselect={test}" for test in CI_ONLY_TESTS]
        # A fresh machine compiles every CPU and CUDA kernel cold, most of the stage's time:
        # spread the tests over worker processes (each with its own CUDA context) where
        # pytest-xdist is installed, and stop a test that hangs (a kernel waiting at a
        # barrier some threads never reach) with a dump of its stacks.
        if importlib.util.find_spec("xdist") is not None:
            command += ["-n", str(TEST_WORKERS)]
        if importlib.util.find_spec("pytest_timeout") is not None:
            command += ["--timeout", str(TEST_TIMEOUT), "--timeout-method", "thread"]
    rc, timed_out, _ = run_logged(command, log, budget, ctx.env())
    text = tail(log, 200000)
    counts = pytest_counts(text)
    result = outcome(rc, timed_out, budget, "tests.log", "pytest")
    if rc == 1 and not timed_out:
        result["reason"] = f"{counts.get('failed', 0)} test(s) failed; see tests.log"
    if timed_out:  # run serially, -v names each test as it starts: the last was running
        started = re.findall(r"^(tests/\S+::\S+)", text, re.M)
        result["reason"] += f"; last test named: {started[-1] if started else '?'}"
    result["counts"] = counts
    result["failures"] = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)[:30]
    if not ctx.simulate:
        result["deselected_ci_only"] = CI_ONLY_TESTS
    return result


def sanitizer():
    """The compute-sanitizer executable, or None."""
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    for pattern in ("/usr/local/cuda*/bin/compute-sanitizer",
                    "/usr/local/cuda*/compute-sanitizer/compute-sanitizer",
                    "/opt/nvidia/*/compute-sanitizer", "/opt/nvidia/*/*/compute-sanitizer"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[-1]
    return None


def sanitizer_verdict(rc, timed_out, text, tool, budget):
    """Classify a compute-sanitizer run: ok, failed (errors or hazards found, or the fits
    failed), refused (the machine does not let it run) or timeout."""
    summary = re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", text)
    said = summary[-1] if summary else ""
    if timed_out:
        return {"status": "timeout", "reason": f"{tool} stopped at its budget of "
                                               f"{budget:.0f} s; see sanitizer.log"}
    if rc == 0:
        return {"status": "ok", "reason": said}
    if rc == SANITIZER_ERRORS:
        return {"status": "failed", "reason": f"{tool} found problems: {said or 'see log'}"}
    lowered = text.lower()
    refusal = next((phrase for phrase in REFUSALS if phrase in lowered), None)
    if refusal is not None and "fit_check:" not in text:
        line = next(l for l in text.splitlines() if refusal in l.lower())
        return {"status": "refused", "reason": f"{tool} refused here: {line.strip()[:160]}"}
    return {"status": "failed", "reason": f"{tool} run exited with status {rc}; see "
                                          "sanitizer.log"}


def _stage_sanitizer(ctx, budget, tool):
    executable = sanitizer()
    log = ctx.log("sanitizer.log")
    with open(log) as f:
        start = len(f.read())
    command = [executable, "--tool", tool, "--error-exitcode", str(SANITIZER_ERRORS),
               "--print-limit", "30", sys.executable, os.path.join(HERE, "fit_check.py"),
               "--quick"]
    rc, timed_out, _ = run_logged(command, log, budget, ctx.env())
    with open(log, errors="replace") as f:
        text = f.read()[start:]
    return sanitizer_verdict(rc, timed_out, text, tool, budget)


def stage_memcheck(ctx, budget):
    return _stage_sanitizer(ctx, budget, "memcheck")


def stage_racecheck(ctx, budget):
    return _stage_sanitizer(ctx, budget, "racecheck")


def stage_bench(ctx, budget):
    log = ctx.log("bench.log")
    out = os.path.join(ctx.outdir, "bench.json")
    if os.path.exists(out):
        os.remove(out)  # never report an earlier run's figures as this one's
    command = [sys.executable, os.path.join(HERE, "bench_cuda.py"), "--json", out]
    if ctx.simulate:
        command += ["--simulate", "--workload", "xor", "--seconds", "0.01", "--repeats", "1"]
    else:  # four workloads, three runners, three samples each, warm-ups and compiles
        seconds = min(0.5, max(0.05, budget / 60))
        command += ["--seconds", f"{seconds:.2f}", "--repeats", "3"]
    result = outcome(*run_logged(command, log, budget, ctx.env())[:2], budget, "bench.log",
                     "bench_cuda.py")
    if os.path.exists(out):
        with open(out) as f:
            figures = json.load(f)
        result["goals"] = figures.get("goals", [])
        result["steps_per_s"] = {name: {who: r.get("steps_per_s") for who, r in row.items()}
                                 for name, row in figures.get("workloads", {}).items()}
    return result


def bench_table(log_path):
    """The table bench_cuda.py printed last, or None."""
    if not os.path.exists(log_path):
        return None
    text = tail(log_path, 20000)
    at = text.rfind("GPU: ")
    return text[at:].split("\n[exit status")[0].strip() if at >= 0 else None
