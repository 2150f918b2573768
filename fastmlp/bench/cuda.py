"""Timing the CUDA training step, for `fastmlp bench --device cuda`.

time_train_steps runs a benchmark workload (workloads.py) through the same Run that `fit`
drives (fit/protocols.Run, through its members), after a warm-up call that compiles every
kernel, and times `steps` steps between two device synchronisations, so the figure is the
device's steady state, launch overhead included, compile time excluded.
"""
import math
import time

from .workloads import WORKLOADS


def time_train_steps(workload, steps=100, dtype="float32", seed=0, warmup=2):
    """Time `steps` training steps of a workload (a Workload or its name) on device="cuda".

    Returns a dict: workload, device, path ("fused-steps": many steps per launch, "fused":
    one launch per step, or "tiled"), launches_per_step (in the timed steps), steps,
    seconds, steps_per_s, samples_per_s and gflops (the FLOP count of
    Workload.flops_per_step).
    """
    if isinstance(workload, str):
        workload = WORKLOADS[workload]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    from ..fit.plan import plan_for
    model = workload.build(dtype=dtype, device="cuda", seed=seed)
    X, y = workload.make_data(seed=seed)
    n = model.as_arrays(X).shape[0]
    batch_size = min(workload.batch_size, n)
    epochs = math.ceil((warmup + steps) / math.ceil(n / batch_size))
    run = model.backend.start(plan_for(model, X, y, epochs=epochs, batch_size=batch_size,
                                       shuffle=True))
    run.train_steps(warmup)  # compiles; returns after a device synchronisation
    launched = run.launches()
    start = time.perf_counter()
    status, ran = run.train_steps(steps)  # ends by reading the status word: a sync
    seconds = time.perf_counter() - start
    path = run.path()
    launches_per_step = (run.launches() - launched) / max(ran, 1)
    run.close()
    if status != 0:
        raise FloatingPointError(f"workload {workload.name}: the loss became NaN or "
                                 f"infinite during the benchmark")
    return {
        "workload": workload.name, "device": "cuda",
        "path": path, "launches_per_step": launches_per_step, "steps": ran, "seconds": seconds,
        "steps_per_s": ran / seconds, "samples_per_s": ran * batch_size / seconds,
        "gflops": workload.flops_per_step() * ran / seconds / 1e9,
    }
