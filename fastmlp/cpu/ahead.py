"""Compiling ahead in a second process.

numba compiles one function at a time in a process (it holds a global lock), on one core. A
cold fit spends its first seconds compiling its training kernel, and the inference kernels
its model calls next (steps.evaluate_rows for predict, score and the validation loss;
parallel.forward_parts for predict on many rows) would compile after it, in turn. So when a
fit has to compile, `start` launches a helper process (`command`: backend.compile_ahead)
that compiles into the same disk cache, on another core meanwhile: first the functions the
training kernel calls that numba compiles on their own, those the fit's compile reaches
last first (separate_callees in parallel.py and steps.py), so that the fit loads them when
it gets there; then those inference kernels. Their argument types depend on the dtype
alone (never on the layer sizes, codes or row counts: backend.inference_calls), so the
helper compiles them for a network of its own. `wait`, called before the first inference,
lets a running helper finish instead of compiling the same kernels twice; that call then
loads them from the cache (core/jitcache.py locks the cache files, so two processes writing
one function's entries at once lose neither).

Nothing starts where it cannot help: caching off (config.CACHE), one core, the kernels
already compiled or cached, or config.COMPILE_AHEAD off (FASTMLP_COMPILE_AHEAD=0). A helper
that fails costs nothing but its own time: the process that needs a kernel compiles it
itself. A helper still running when its parent exits is stopped then.
"""
import atexit
import os
import subprocess
import sys

from .. import config
from ..core import jitcache
from . import parallel, threads
from . import steps as cpu_steps

#: (dtype name, split forward, training kernel) -> (the process that launched it, Popen)
_helpers = {}


#: The training kernels whose separately compiled functions a helper compiles, by name.
TRAINING = {"team": parallel.separate_callees, "serial": cpu_steps.separate_callees}


def command(dtype, split, training):
    """The helper's command line: backend.compile_ahead(dtype, split, training)."""
    return [sys.executable, "-c", "import sys; from fastmlp.cpu.backend import compile_ahead; "
            "compile_ahead(sys.argv[1], sys.argv[2] == 'split', sys.argv[3])",
            dtype, "split" if split else "serial", training or "none"]


def start(backend, training=None):
    """Launch a helper compiling backend's inference kernels and, first, the separately
    compiled functions of the training kernel named `training` (a key of TRAINING, or None),
    unless it cannot help or one is already at it. Returns the Popen, or None."""
    if not (config.CACHE and config.COMPILE_AHEAD) or threads.cores() < 2:
        return None
    # Only a Python interpreter can run the helper (an embedding program's executable,
    # uWSGI's say, would start another copy of itself).
    if not os.path.basename(sys.executable or "").startswith("python"):
        return None
    calls = backend.inference_calls()
    key = (backend.dtype.name, len(calls) > 1, training)
    running = _helpers.get(key)
    if running is not None and running[0] == os.getpid() and running[1].poll() is None:
        return running[1]
    if jitcache.ready(calls + (TRAINING[training](backend.dtype) if training else [])):
        return None
    env = dict(os.environ)
    # The helper imports this very package (a script run from a checkout may have found it
    # through sys.path[0], which the helper would not see).
    root = os.path.dirname(jitcache.PACKAGE_DIR)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(command(*key), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    _helpers[key] = (os.getpid(), proc)
    return proc


def wait(dtype):
    """Let the helpers compiling kernels of this dtype finish (at most
    config.COMPILE_AHEAD_WAIT seconds each, then they are stopped and the caller compiles
    what it needs)."""
    for key in [k for k in _helpers if k[0] == dtype.name]:
        pid, proc = _helpers.pop(key)
        if pid != os.getpid():  # a forked child's copy: not its helper
            continue
        try:
            proc.wait(timeout=config.COMPILE_AHEAD_WAIT)
        except subprocess.TimeoutExpired:
            _stop(proc)


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@atexit.register
def _stop_all():
    """A helper outlives no parent: one still compiling when the parent exits is stopped
    (numba writes each cache file whole, under a temporary name first)."""
    for key in list(_helpers):
        pid, proc = _helpers.pop(key)
        if pid == os.getpid() and proc.poll() is None:
            _stop(proc)
