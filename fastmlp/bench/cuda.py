"""Timing the CUDA training step, for `fastmlp bench --device cuda`.

time_train_steps runs a benchmark workload (workloads.py) through the same backend calls
that `fit` makes, after a warm-up call that compiles every kernel, and times `steps` steps
between two device synchronisations, so the figure is the device's steady state, launch
overhead included, compile time excluded.
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
    model = workload.build(dtype=dtype, device="cuda", seed=seed)
    X, T = model.as_arrays(*workload.make_data(seed=seed))
    batch_size = min(workload.batch_size, X.shape[0])
    epochs = math.ceil((warmup + steps) / math.ceil(X.shape[0] / batch_size))
    backend = model.backend
    backend.begin_fit(X, T, batch_size, True, epochs, model.loss_code,
                      model.optimizer, model.l2)
    trainer = backend.trainer
    trainer.train_steps(warmup)  # compiles; returns after a device synchronisation
    run = trainer.steps_run
    launched = run.launches if run is not None else 0
    start = time.perf_counter()
    status, ran = trainer.train_steps(steps)  # ends by reading the status word: a sync
    seconds = time.perf_counter() - start
    if run is not None:
        path, launches_per_step = "fused-steps", (run.launches - launched) / max(ran, 1)
    else:
        path = "fused" if backend.dws.fused else "tiled"
        launches_per_step = trainer.launches_per_step
    if status != 0:
        raise FloatingPointError(f"workload {workload.name}: the loss became NaN or "
                                 f"infinite during the benchmark")
    return {
        "workload": workload.name, "device": "cuda",
        "path": path, "launches_per_step": launches_per_step, "steps": ran, "seconds": seconds,
        "steps_per_s": ran / seconds, "samples_per_s": ran * batch_size / seconds,
        "gflops": workload.flops_per_step() * ran / seconds / 1e9,
    }
