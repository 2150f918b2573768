"""Where a cold start's seconds go: the first result of a fresh install, and numba's compile
time per overload.

    python -m fastmlp.bench.compile [--rows 4096] [--json FILE]

runs the first-result workload (fit 784-256-10 relu/softmax, Adam, batch 128, 4,096 rows, one
epoch, then predict) in this process and prints, per compiled overload of fastmlp's
kernels, the seconds numba held its compiler lock (a callee compiled for the first time is
counted in its caller's figure too) and its LLVM lock, largest first, then the wall time of
the imports, the fit and the predict. Run it with empty caches (NUMBA_CACHE_DIR and
FASTMLP_CACHE_DIR pointing at new directories) to see a fresh install's cold start: with
the kernels a built package ships (cpu/ship.py) the table is empty, as with warm caches
(everything is loaded, nothing compiled); FASTMLP_SHIPPED_KERNELS=0 shows the compile
itself.
"""
import argparse
import gc
import json
import sys
import time


def fastmlp_dispatchers():
    """Every numba dispatcher in this process whose function is fastmlp's (its modules and
    the generated kernels, in modules named fastmlp_*)."""
    from numba.core.dispatcher import Dispatcher
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, Dispatcher):
            module = getattr(obj.py_func, "__module__", "") or ""
            if module.startswith("fastmlp"):
                found.append(obj)
    return found


def compile_times():
    """[(name, signature, compiler-lock seconds, llvm-lock seconds)] of every overload
    compiled in this process (loaded ones have no timers), largest first."""
    rows = []
    for d in fastmlp_dispatchers():
        name = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
        for sig, cres in d.overloads.items():
            timers = (cres.metadata or {}).get("timers", {})
            if timers:
                rows.append((name, str(sig), timers.get("compiler_lock", 0.0),
                             timers.get("llvm_lock", 0.0)))
    return sorted(rows, key=lambda row: -row[2])


def first_result(rows=4096, seed=0):
    """The first-result workload; returns its phases' wall seconds."""
    started = time.perf_counter()
    import numpy as np
    import fastmlp
    imported = time.perf_counter()
    rng = np.random.default_rng(seed)
    X = rng.random((rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    model = fastmlp.MLP(784, [(256, "relu"), (10, "softmax")], optimizer=fastmlp.Adam(),
                        dtype="float32", seed=seed)
    model.fit(X, y, epochs=1, batch_size=128, progress=False)
    fitted = time.perf_counter()
    model.predict(X)
    predicted = time.perf_counter()
    return {"import_s": imported - started, "fit_s": fitted - imported,
            "predict_s": predicted - fitted, "total_s": predicted - started}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp.bench.compile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096, help="training rows (4096)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    phases = first_result(args.rows)
    table = compile_times()
    width = max([len(f"{n}{s}") for n, s, _, _ in table] + [20])
    print(f"{'overload':<{min(width, 100)}}  compile s  llvm s")
    for name, sig, seconds, llvm in table:
        print(f"{(name + sig)[:100]:<{min(width, 100)}}  {seconds:9.2f}  {llvm:6.2f}")
    print(" ".join(f"{k}={v:.2f}" for k, v in phases.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"phases": phases, "overloads": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
