"""Memory: the peak resident size of a training process, and allocations per training step."""
from fastmlp.bench.workloads import WORKLOADS

from .common import DTYPES, WORKLOAD_NAMES, WarmKernels, build_model, steps_for, training_data


class FitMemory(WarmKernels):
    """Peak RSS of a process that imports fastmlp, builds the workload's model and fits it
    (asv measures the whole process: imports and Numba's runtime are the floor)."""
    params = WORKLOAD_NAMES
    param_names = ["workload"]

    def setup(self, workload):
        w = WORKLOADS[workload]
        self.model = build_model(w)
        self.X, self.y, self.epochs = training_data(w, steps_for(w))
        self.batch_size = w.batch_size

    def peakmem_fit(self, workload):
        self.model.fit(self.X, self.y, epochs=self.epochs, batch_size=self.batch_size,
                       progress=False)


class Allocations(WarmKernels):
    """Numba runtime (NRT) allocations per training step, in the compiled loop fit runs: the
    flat buffers are preallocated, so this must stay 0; anything else is a kernel regression."""
    params = (WORKLOAD_NAMES, DTYPES)
    param_names = ["workload", "dtype"]

    def setup(self, workload, dtype):
        try:
            from fastmlp.bench.diagnostics import allocations_per_step
        except ImportError as exc:  # a commit from before the counter existed: skip it there
            raise NotImplementedError(f"no allocation counter in this commit: {exc}") from exc
        self.allocations_per_step = allocations_per_step
        w = WORKLOADS[workload]
        self.model = build_model(w, dtype)
        self.X, self.y = w.make_data(n_samples=4 * w.batch_size)
        self.batch_size = w.batch_size

    def track_allocations_per_step(self, workload, dtype):
        # 8 steps over epochs of 4 batches: an allocation made once per epoch shows too.
        return self.allocations_per_step(self.model, self.X, self.y, self.batch_size, steps=8)

    track_allocations_per_step.unit = "allocations/step"
