"""The kernels a wheel ships: compiled ahead of time, so that a fresh install's first fit
loads them instead of compiling for 20 seconds.

    python -m fastmlp.cpu.ship OUT [--jobs N] [--workloads NAME,...]
    python -m fastmlp.cpu.ship --status      # does this installation use its kernels?

runs the common fits and predictions (WORKLOADS: the team and the serial training kernels
in float32 and float64, the scikit-learn drop-in's solvers, `fastmlp train`'s main job) in
worker processes whose numba compiles for TARGET instead of this machine's own CPU, into
an empty cache; then copies the package's cache files into OUT, one directory per package
directory, and writes OUT/manifest.json last (a directory without it is never used).
core/shipped.py loads them wherever the CPU has every feature in REQUIRES and numba, Python,
the kernel sources and the BLAS choice are the ones they were built with; what they do not
cover compiles there as before. setup.py runs this when it builds the package, so `pip
install .` and a wheel carry the kernels; FASTMLP_SHIP_KERNELS=0 then builds without them.

The workloads only have to reach every kernel signature a common first result calls: they
use a few hundred rows, and their numbers are thrown away. A machine without TARGET's
features cannot run what it compiles, so there the command ships nothing and says so.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

#: The CPU level the shipped code is compiled for: x86-64-v3 (AVX2, FMA, BMI2; Intel since
#: Haswell, 2013, AMD since Excavator and every Zen). Its vectors are as wide as AVX2
#: machines' own; an AVX-512 machine runs them at AVX2 width (FASTMLP_SHIPPED_KERNELS=0
#: compiles for it instead).
TARGET = "x86-64-v3"
#: The features, by LLVM's names, that x86-64-v3 and the levels below it add to x86-64.
REQUIRES = ("cx16", "sahf", "popcnt", "sse3", "ssse3", "sse4.1", "sse4.2", "avx", "avx2",
            "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")


def _rows(n_inputs, n_classes, rows, dtype, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return (rng.random((rows, n_inputs)).astype(dtype),
            rng.integers(0, n_classes, rows))


def team(dtype):
    """A fit wide enough for the team kernel (784-256-10, Adam: the first-result workload),
    then predict on enough rows to split them, predict_proba, evaluate and gradients."""
    import numpy as np

    import fastmlp
    X, y = _rows(784, 10, 2048, dtype)
    model = fastmlp.MLP(784, [(256, "relu"), (10, "softmax")], optimizer=fastmlp.Adam(),
                        dtype=dtype, seed=0)
    model.fit(X, y, epochs=1, batch_size=128, progress=False,
              validation_data=(X[:256], y[:256]))
    model.predict(X)
    model.predict_proba(X[:100])
    model.evaluate(X[:300], y[:300])
    model.gradients(X[:64], y[:64])
    model.fit(X[:512], y[:512], epochs=1, batch_size=128, progress=False,
              sample_weight=np.ones(512, dtype))


def serial(dtype):
    """Fits too small for the team kernel: the serial kernels, with each loss, both
    optimizers, validation and sample weights."""
    import numpy as np

    import fastmlp
    X, y = _rows(16, 3, 256, dtype)
    model = fastmlp.MLP(16, [(32, "tanh"), (3, "softmax")], optimizer=fastmlp.Adam(),
                        dtype=dtype, seed=0)
    model.fit(X, y, epochs=2, batch_size=32, progress=False, validation_data=(X, y))
    model.predict(X)
    model.predict_proba(X)
    model.evaluate(X, y)
    model.gradients(X, y)
    model.fit(X, y, epochs=1, batch_size=32, progress=False,
              sample_weight=np.linspace(0.5, 1.5, len(y)).astype(dtype))
    target = (X[:, :1] ** 2).astype(dtype)
    regressor = fastmlp.MLP(16, [(8, "sigmoid"), (1, "identity")], loss="mse",
                            optimizer=fastmlp.SGD(lr=0.1, momentum=0.9), dtype=dtype, seed=0)
    regressor.fit(X, target, epochs=2, batch_size=16, progress=False)
    regressor.predict(X)
    binary = fastmlp.MLP(16, [(8, "relu"), (1, "sigmoid")], loss="binary_cross_entropy",
                         dtype=dtype, seed=0)
    binary.fit(X, (y == 1).astype(dtype)[:, None], epochs=1, batch_size=16, progress=False)
    binary.predict(X)


def drop_in():
    """The scikit-learn drop-in on digits as its users call it (float64, as the data)."""
    import warnings

    from sklearn.datasets import load_digits

    from fastmlp.sklearn import MLPClassifier, MLPRegressor
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few iterations to converge: on purpose
        for solver in ("adam", "sgd", "lbfgs"):
            model = MLPClassifier(hidden_layer_sizes=(100,), solver=solver, max_iter=3,
                                  random_state=0)
            model.fit(X, y).predict_proba(X)
            model.score(X, y)
        MLPClassifier(hidden_layer_sizes=(100,), max_iter=3, early_stopping=True,
                      random_state=0).fit(X, y)
        for solver in ("adam", "lbfgs"):
            MLPRegressor(hidden_layer_sizes=(50,), solver=solver, max_iter=3,
                         random_state=0).fit(X, y.astype(float)).predict(X)


def train_command():
    """`fastmlp train` as the README runs it (digits), saving the model."""
    from fastmlp.cli import main
    with tempfile.TemporaryDirectory() as directory:
        main(["train", "--quiet", "--epochs", "2", "--save", os.path.join(directory, "m")])


def predict():
    """Inference alone, float64 (a quick build: the tests ship only this)."""
    import numpy as np

    import fastmlp
    model = fastmlp.MLP(4, [(3, "tanh"), (2, "softmax")], dtype="float64", seed=0)
    X = np.linspace(-1, 1, 40).reshape(10, 4)
    model.forward(X)
    model.predict(X)


#: name -> (function, args); the order is roughly longest first (jobs take them in turn).
WORKLOADS = {
    "team-float32": (team, ("float32",)),
    "team-float64": (team, ("float64",)),
    "serial-float32": (serial, ("float32",)),
    "serial-float64": (serial, ("float64",)),
    "drop-in": (drop_in, ()),
    "train": (train_command, ()),
    "predict": (predict, ()),
}
#: What a build ships unless told otherwise ("predict" is in "serial-float64").
DEFAULT_WORKLOADS = ("team-float32", "team-float64", "serial-float32", "serial-float64",
                     "drop-in", "train")


def can_run_target():
    """True when this machine can run code compiled for TARGET."""
    import platform

    from ..core import shipped
    return (platform.machine().lower() in ("x86_64", "amd64")
            and set(REQUIRES) <= shipped.host_features())


def run_workloads(names, magic_file):
    """A worker: run the named workloads, then write numba's codegen tuple to magic_file."""
    from numba.core.registry import cpu_target
    for name in names:
        function, args = WORKLOADS[name]
        function(*args)
    with open(magic_file, "w") as f:
        json.dump(list(cpu_target.target_context.codegen().magic_tuple()), f)


def _worker_env(cache_dir, other_dir):
    import fastmlp
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env = dict(os.environ)
    env.update(NUMBA_CPU_NAME=TARGET, NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR=cache_dir,
               FASTMLP_CACHE_DIR=other_dir, FASTMLP_SHIPPED_KERNELS="0",
               FASTMLP_COMPILE_AHEAD="0", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p))
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


def _copy_package_files(cache_dir, out):
    """Copy the cache files of every package directory's kernels from cache_dir (numba's
    NUMBA_CACHE_DIR layout: one directory per source directory, named after its path) to
    out/<the directory's path in the package>; returns the number of files."""
    from numba.core.caching import UserProvidedCacheLocator

    from ..core import jitcache
    copied = 0
    for here, _, files in os.walk(jitcache.PACKAGE_DIR):
        if not any(f.endswith(".py") for f in files):
            continue
        sub = UserProvidedCacheLocator.get_suitable_cache_subpath(os.path.join(here, "x.py"))
        source = os.path.join(cache_dir, sub)
        if not os.path.isdir(source):
            continue
        target = os.path.join(out, os.path.relpath(here, jitcache.PACKAGE_DIR))
        for name in sorted(os.listdir(source)):
            if name.endswith((".nbi", ".nbc")):
                os.makedirs(target, exist_ok=True)
                shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
                copied += 1
    return copied


def build(out, names=None, jobs=None, log=print):
    """Compile the named workloads' kernels (DEFAULT_WORKLOADS by default) for TARGET into
    out, replacing what was there. Returns the manifest written, or None when this machine
    cannot run TARGET's code (nothing is written then)."""
    from .. import files as files_module
    from ..core import shipped
    from . import threads
    names = list(DEFAULT_WORKLOADS if names is None else names)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; choose from {sorted(WORKLOADS)}")
    if not can_run_target():
        log(f"fastmlp: this machine cannot run {TARGET} code: no kernels shipped "
            "(they compile on first use instead)")
        return None
    jobs = max(1, min(jobs or threads.cores(), len(names)))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fastmlp-ship-") as scratch:
        cache_dir = os.path.join(scratch, "numba")
        env = _worker_env(cache_dir, os.path.join(scratch, "other"))
        procs = []
        for job in range(jobs):
            mine = names[job::jobs]
            magic_file = os.path.join(scratch, f"magic-{job}.json")
            code = ("import sys, json; from fastmlp.cpu.ship import run_workloads; "
                    "run_workloads(json.loads(sys.argv[1]), sys.argv[2])")
            procs.append((mine, magic_file, subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(mine), magic_file], env=env)))
        failed = [mine for mine, _, proc in procs if proc.wait() != 0]
        if failed:
            raise RuntimeError(f"compiling the shipped kernels failed in workloads {failed} "
                               "(their output is above)")
        magics = set()
        for _, magic_file, _ in procs:
            with open(magic_file) as f:
                magics.add(tuple(json.load(f)))
        if len(magics) != 1:
            raise RuntimeError(f"the workers compiled for different targets: {magics}")
        if os.path.isdir(out):
            shutil.rmtree(out)
        files = _copy_package_files(cache_dir, out)
    os.makedirs(out, exist_ok=True)  # (no files at all: an empty, but honest, manifest)
    digests = {}
    for here, _, listed in os.walk(out):
        for name in listed:
            path = os.path.join(here, name)
            digests[os.path.relpath(path, out)] = files_module.digest(path)
    manifest = {**shipped.identity(), "target": TARGET, "requires": list(REQUIRES),
                "magic": list(magics.pop()), "workloads": names, "files": files,
                "sha256": digests}
    files_module.atomic_write(os.path.join(out, shipped.MANIFEST),
                              lambda f: json.dump(manifest, f, indent=1), text=True)
    log(f"fastmlp: shipped kernels for {TARGET} ({files} files, workloads {names}) "
        f"in {time.perf_counter() - started:.0f} s: {out}")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp.cpu.ship",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?",
                        help="the directory to write (replaced if it exists)")
    parser.add_argument("--jobs", type=int, help="worker processes (default: one per core)")
    parser.add_argument("--workloads", help="comma-separated, of: " + ", ".join(WORKLOADS))
    parser.add_argument("--status", action="store_true",
                        help="say whether this installation loads its shipped kernels "
                             "(exit status 1 when not) instead of building")
    args = parser.parse_args(argv)
    if args.status:
        from ..core import shipped
        line, used = shipped.status(args.out)
        print(line)
        sys.exit(0 if used else 1)
    if args.out is None:
        parser.error("give the directory to write (or --status)")
    names = args.workloads.split(",") if args.workloads else None
    build(args.out, names, args.jobs)


if __name__ == "__main__":
    main()
