"""Training speed: a fixed number of minibatch steps through the public fit."""
from fastmlp.bench.workloads import WORKLOADS

from .common import DEVICES, DTYPES, WORKLOAD_NAMES, WarmKernels, build_model, steps_for, \
    training_data


class TrainSteps(WarmKernels):
    """Seconds for steps_for(workload) steps (with today's workloads: 4096 for xor and x2, 32
    for mnist-small, 4 for mnist-wide; divide to get seconds per step). asv re-runs setup
    before each sample, so every sample trains the same fresh model."""
    params = (WORKLOAD_NAMES, DTYPES, DEVICES)
    param_names = ["workload", "dtype", "device"]
    # At least 3 samples, at most 10, stopping after ~5 s: mnist-wide takes ~0.1-0.5 s a call.
    repeat = (3, 10, 5.0)

    def setup(self, workload, dtype, device):
        w = WORKLOADS[workload]
        self.model = build_model(w, dtype, device)
        self.X, self.y, self.epochs = training_data(w, steps_for(w))
        self.batch_size = w.batch_size

    def time_train_steps(self, workload, dtype, device):
        self.model.fit(self.X, self.y, epochs=self.epochs, batch_size=self.batch_size,
                       shuffle=True, progress=False)
