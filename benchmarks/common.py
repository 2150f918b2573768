"""What the benchmark modules share: parameters, warmed-up models and data of the workloads.

The workloads themselves come from fastmlp.bench.workloads, the one table that `fastmlp bench`
reads too. Compilation never lands in a figure: WarmKernels.setup_cache compiles every kernel
into Numba's on-disk cache before the benchmarks run (asv runs a setup_cache once per
definition, so once for every class that inherits this one), and each benchmark's setup loads
them into its own process with a one-step fit.
"""
import math

from numba.core import config as numba_config

from fastmlp.bench.workloads import WORKLOADS

WORKLOAD_NAMES = list(WORKLOADS)
DTYPES = ["float32", "float64"]
DEVICES = ["cpu", "cuda"]

#: Seconds for a cold compile of every kernel in both dtypes, with room for a slow machine.
COMPILE_TIMEOUT = 900

#: Floating-point work per timed training call: enough that the compiled loop, not the Python
#: edge of fit, dominates even the smallest workload; capped so mnist-wide stays short.
FLOP_PER_CALL = 2e9
MIN_STEPS, MAX_STEPS = 4, 4096  # fit runs up to 4096 steps in one compiled call


def steps_for(workload):
    """Training steps per timed call: about FLOP_PER_CALL of work, a power of two."""
    steps = 2 ** round(math.log2(FLOP_PER_CALL / workload.flops_per_step()))
    return int(min(MAX_STEPS, max(MIN_STEPS, steps)))


def training_data(workload, steps):
    """(X, y, epochs): synthetic data of at most 8 batches and the epochs making `steps` steps."""
    X, y = workload.make_data(n_samples=min(steps, 8) * workload.batch_size)
    steps_per_epoch = math.ceil(len(X) / workload.batch_size)
    if steps % steps_per_epoch:
        raise ValueError(f"{steps} steps are not whole epochs of {steps_per_epoch} batches")
    return X, y, steps // steps_per_epoch


def build_model(workload, dtype="float32", device="cpu"):
    """The workload's model (seed 0) with its kernels loaded by one training step.

    A device this machine cannot use raises NotImplementedError, which asv reports as a
    skipped benchmark. The CUDA backend is optional and may be missing from a build, so any
    of the errors a missing backend or driver raises counts as "not available" there; so does
    Numba's CUDA simulator, whose figures would time Python, not a GPU.
    """
    if device != "cpu" and numba_config.ENABLE_CUDASIM:
        raise NotImplementedError(f"device {device!r} would run in Numba's CUDA simulator")
    X, y = workload.make_data(n_samples=workload.batch_size)
    try:
        model = workload.build(dtype=dtype, device=device, seed=0)
        model.fit(X, y, epochs=1, batch_size=workload.batch_size, progress=False)
    except (ValueError, ImportError, RuntimeError) as exc:
        if device == "cpu":
            raise
        raise NotImplementedError(f"device {device!r} is not available: {exc}") from exc
    return model


class WarmKernels:
    """Base of every benchmark class: compiles all kernels once, before any benchmark runs."""

    def setup_cache(self):
        from fastmlp.bench.run import generated_kernels
        for dtype in DTYPES:
            for workload in WORKLOADS.values():
                X, y = workload.make_data(n_samples=workload.batch_size)
                build_model(workload, dtype).evaluate(X, y)  # + inference and loss kernels
                # The kernel generated for a small network (xor, x2), which fit's "auto" rule
                # then loads from disk in every benchmark process: timed calls are too short
                # to pay for its compile, so without this they would time the generic kernel
                # or not depending on what ran on the machine before.
                with generated_kernels():
                    workload.build(dtype=dtype).fit(X, y, epochs=1,
                                                    batch_size=workload.batch_size,
                                                    progress=False)
        # Returning None means asv passes no cache argument to setup and the benchmarks.

    setup_cache.timeout = COMPILE_TIMEOUT
