"""Training speed: a fixed, large number of minibatch steps through the public fit."""
import time

from .common import BATCHES_PER_EPOCH, COMPILE_TIMEOUT, SUITE_VERSION, WORKLOAD_NAMES, \
    WORKLOADS, best_of, make_data, warm_model


class TrainSteps:
    """CPU seconds for Workload.steps training steps of a fresh model (float32, one thread,
    the generic kernel; xor 131,072 steps, x2 32,768, mnist-small 512, mnist-wide 16:
    steps/s = steps / the figure). Each sample trains a new model, so all do the same work.

    asv reads a lower figure as better, so this is time for fixed work, not steps/s: a
    `track_` in steps/s would show every speed-up as a regression in `asv compare`."""
    params = WORKLOAD_NAMES
    param_names = ["workload"]
    version = SUITE_VERSION
    # One thread: its CPU time is the step's work, and moves far less than wall time when
    # neighbours share the core.
    timer = time.process_time
    number = 1
    repeat = (5, 10, 20.0)
    timeout = COMPILE_TIMEOUT  # the first setup in a new environment compiles the kernel

    def setup(self, workload):
        w = WORKLOADS[workload]
        self.model = warm_model(w)
        self.X, self.y = make_data(w)
        self.epochs = w.steps // BATCHES_PER_EPOCH
        self.batch_size = w.batch_size

    def time_train_steps(self, workload):
        self.model.fit(self.X, self.y, epochs=self.epochs, batch_size=self.batch_size,
                       shuffle=True, progress=False)

    def track_step_us(self, workload):
        """Microseconds per step: the fastest of several timed fits (common.best_of) over
        their steps, in one unit for every workload. Lower is better, as asv reads it."""
        steps = self.epochs * BATCHES_PER_EPOCH
        return 1e6 * best_of(lambda: self.time_train_steps(workload)) / steps

    track_step_us.unit = "µs/step"
