"""Small fits on device="cuda" against the same fits on the CPU, one per training path, at the
package's default launch shapes (the tests force tiny ones), then each kernel's registers,
shared and local memory as compiled for this GPU.

    python benchmarks/gpu/fit_check.py [--quick] [--simulate]

check.py runs it on its own and under compute-sanitizer (--quick: float32 only, fewer
epochs); --simulate runs it in Numba's CUDA simulator with tiny launch shapes. Prints one
line per fit with the largest difference from the CPU; exits 1 if any fit is off by more
than its tolerance (CUDA's fused multiply-adds round differently from the CPU's sums, so
the tolerances are looser than the simulator's parity tests), 0 otherwise.
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Tiny launch shapes for the simulator (one Python thread per CUDA thread), as the tests use.
SIMULATOR_CONFIG = dict(CUDA_TILE_ROWS=4, CUDA_TILE_COLS=4, CUDA_TILE_DEPTH=2,
                        CUDA_THREAD_ROWS=2, CUDA_THREAD_COLS=2, CUDA_THREADS=4,
                        CUDA_OPTIMIZER_BLOCKS=3, CUDA_FUSED_MAX_WIDTH=8, CUDA_FUSED_ROWS=2,
                        CUDA_FUSED_THREADS=4)

# Relative tolerance on the weights after a few epochs, per dtype.
TOLERANCE = {"float64": 1e-9, "float32": 2e-3}


def cases(quick, simulate):
    """(name, config overrides, n_inputs, layers, optimizer, rows, batch size, epochs); the
    name is the training path the fit must take (fused-wide: the one-launch-per-step fused
    kernel, because the network is too big for the multi-step one)."""
    import fastmlp
    narrow = [(8, "relu"), (8, "relu"), (1, "identity")]  # the x2 workload's network
    epochs = 2 if quick or simulate else 3
    rows = 16 if simulate else 400
    batch = 8 if simulate else 100
    # On the GPU the tiled network spans two 64-wide column tiles; in the simulator, with
    # 4-wide tiles, a small one does.
    tiled = (3, [(5, "tanh"), (3, "softmax")]) if simulate else \
        (12, [(96, "tanh"), (10, "softmax")])
    found = [
        ("fused-steps", {}, 1, narrow, lambda: fastmlp.Adam(lr=0.01), rows, batch, epochs),
        ("fused", {"CUDA_FUSED_STEPS": False}, 1, narrow,
         lambda: fastmlp.SGD(lr=0.05, momentum=0.9), rows, batch, epochs),
        ("tiled", {"CUDA_FUSED": False}, *tiled, lambda: fastmlp.SGD(lr=0.1), rows, batch,
         epochs),
    ]
    if not simulate:  # fits the fused path's widths but not one block's shared memory
        found.append(("fused-wide", {}, 48, [(64, "relu"), (64, "sigmoid"), (10, "softmax")],
                      lambda: fastmlp.AdamW(lr=0.01), 256, 128, epochs))
    return found


def data(n_inputs, layers, rows, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n_inputs))
    k = layers[-1][0]
    y = rng.integers(0, k, rows) if layers[-1][1] == "softmax" else X.sum(axis=1) ** 2
    return X, y


def path_of(model, batch):
    from fastmlp.cuda import fused
    dws = model.backend.dws
    if not dws.fused:
        return "tiled"
    steps = fused.use_steps(model.spec, True, batch, dws.dtype.itemsize, resident=True)
    return "fused-steps" if steps is not None else "fused"


def run_case(case, dtype):
    """Fit on both devices; returns (largest relative difference of the weights and of
    the epoch losses, the training path the CUDA fit took)."""
    import fastmlp
    from fastmlp import config
    name, overrides, n_inputs, layers, optimizer, rows, batch, epochs = case
    saved = {key: getattr(config, key) for key in overrides}
    try:
        for key, value in overrides.items():
            setattr(config, key, value)
        X, y = data(n_inputs, layers, rows, seed=len(name))
        models = [fastmlp.MLP(n_inputs, layers, optimizer=optimizer(), dtype=dtype, seed=1,
                              device=device) for device in ("cpu", "cuda")]
        histories = [m.fit(X, y, epochs=epochs, batch_size=batch, progress=False)
                     for m in models]
        path = path_of(models[1], batch)
    finally:
        for key, value in saved.items():
            setattr(config, key, value)
    worst = 0.0
    for (Wc, bc), (Wg, bg) in zip(models[0].get_weights(), models[1].get_weights()):
        for c, g in ((Wc, Wg), (bc, bg)):
            scale = max(float(np.abs(c).max()), 1e-30)
            worst = max(worst, float(np.abs(g - c).max()) / scale)
    loss_gap = float(np.max(np.abs(histories[1].loss - histories[0].loss)
                            / np.maximum(np.abs(histories[0].loss), 1e-30)))
    return max(worst, loss_gap), path


def kernel_resources():
    """Lines of registers per thread, static shared memory per block and local memory per
    thread (spills show here) of every fastmlp kernel compiled in this process, as the
    driver reports them for this GPU. A kernel whose figures cannot be read says why: the
    report informs, it never fails the check."""
    import gc

    from numba.cuda.dispatcher import CUDADispatcher
    lines = []
    for obj in gc.get_objects():
        if not isinstance(obj, CUDADispatcher) \
                or not getattr(obj.py_func, "__module__", "").startswith("fastmlp") \
                or obj.targetoptions.get("device"):
            continue  # a device function has no launch resources of its own
        for args, kernel in list(obj.overloads.items()):
            dtype = next((str(t.dtype) for t in args if hasattr(t, "dtype")), "")
            try:
                lines.append(f"  {obj.py_func.__name__:<24} {dtype:<8} "
                             f"regs {kernel.regs_per_thread:>3}  "
                             f"shared {kernel.shared_mem_per_block:>6} B  "
                             f"local {kernel.local_mem_per_thread:>4} B")
            except Exception as error:
                lines.append(f"  {obj.py_func.__name__:<24} {dtype:<8} "
                             f"({type(error).__name__}: {error})")
    return sorted(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="float32 only, two epochs")
    parser.add_argument("--simulate", action="store_true",
                        help="Numba's CUDA simulator, tiny launch shapes")
    args = parser.parse_args(argv)
    # FASTMLP_CHECK_STALL (seconds): a stage that outlasts its budget whatever the caches
    # hold, for the test of check.py's time limit
    time.sleep(float(os.environ.get("FASTMLP_CHECK_STALL", "0")))
    if args.simulate:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    sys.path.insert(0, ROOT)
    from fastmlp import config
    if args.simulate:
        for key, value in SIMULATOR_CONFIG.items():
            setattr(config, key, value)
    failures = 0
    for dtype in (["float32"] if args.quick else ["float64", "float32"]):
        for case in cases(args.quick, args.simulate):
            gap, path = run_case(case, dtype)
            expected = case[0].replace("-wide", "")
            ok = gap <= TOLERANCE[dtype] and path == expected
            failures += not ok
            print(f"{case[0]:<12} {dtype:<8} path {path:<12} largest relative difference "
                  f"from the CPU {gap:.2e} (tolerance {TOLERANCE[dtype]:.0e}) "
                  f"{'ok' if ok else 'FAILED'}", flush=True)
    if not args.simulate:
        try:
            resources = kernel_resources()
        except Exception as error:
            resources = [f"  (not available: {type(error).__name__}: {error})"]
        print("kernel resources (as compiled for this GPU):")
        print("\n".join(resources), flush=True)
    print(f"fit_check: {failures} of the fits differ from the CPU beyond tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
