"""The benchmark workloads (README, Speed), defined once for `fastmlp bench` and asv.

Each workload fixes an architecture, loss, optimizer and batch size (all float32 unless a
caller asks otherwise); `make_data` builds synthetic data of the right shape, so nothing is
downloaded and the figures measure the kernels, not a dataset. `fashion` is the exception in
`fastmlp bench` alone, which trains it on Fashion-MNIST when the files are on the machine.
"""
from dataclasses import dataclass

import numpy as np

from ..core.optimizers import SGD, Adam


@dataclass(frozen=True)
class Workload:
    name: str
    n_inputs: int
    layers: tuple        # ((size, activation), ...)
    loss: str
    optimizer: str       # "sgd" or "adam"
    lr: float
    batch_size: int

    def make_optimizer(self):
        return SGD(lr=self.lr) if self.optimizer == "sgd" else Adam(lr=self.lr)

    def build(self, dtype="float32", device="cpu", seed=0):
        from ..model import MLP
        return MLP(self.n_inputs, list(self.layers), loss=self.loss,
                   optimizer=self.make_optimizer(), dtype=dtype, device=device, seed=seed)

    def make_data(self, n_samples=None, seed=0):
        """(X, y) with n_samples rows (default: 8 batches; xor: its 4 points)."""
        rng = np.random.default_rng(seed)
        if self.name == "xor":
            X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
            return X, np.array([0, 1, 1, 0])
        n = n_samples or 8 * self.batch_size
        if self.name == "x2":
            x = 5 * rng.standard_normal((n, 1))
            return x.astype(np.float32), (x[:, 0] ** 2 + rng.standard_normal(n))
        k = self.layers[-1][0]  # MNIST-shaped: pixels in [0, 1), 10 classes
        return rng.random((n, self.n_inputs), dtype=np.float32), rng.integers(0, k, n)

    def flops_per_step(self):
        """The FLOPs of one training step (spec.NetworkSpec.flops_per_step, the one home of
        the count): forward + weight gradients + deltas of all but the first layer."""
        from ..core.spec import NetworkSpec
        return NetworkSpec(self.n_inputs, list(self.layers)).flops_per_step(self.batch_size)


WORKLOADS = {w.name: w for w in [
    Workload("xor", 2, ((2, "relu"), (1, "sigmoid")), "binary_cross_entropy", "sgd", 0.5, 4),
    Workload("x2", 1, ((8, "relu"), (8, "relu"), (1, "identity")), "mse", "adam", 0.1, 100),
    Workload("mnist-small", 784, ((128, "sigmoid"), (10, "softmax")), "cross_entropy", "sgd",
             0.1, 128),
    Workload("mnist-wide", 784, ((1024, "relu"), (1024, "relu"), (10, "softmax")),
             "cross_entropy", "sgd", 0.05, 256),
    # Real data: `fastmlp bench` trains it on Fashion-MNIST (bench_fashion.py); make_data
    # gives synthetic rows of its shape, for asv and the tests.
    Workload("fashion", 784, ((256, "relu"), (10, "softmax")), "cross_entropy", "adam",
             1e-3, 128),
]}


def jax_params(workload):
    """The JAX peers' starting weights for a workload, [(W, b), ...] with W ~ N(0, 1/n_in),
    and the PRNG key after drawing them (for the peer's shuffles)."""
    import jax
    import jax.numpy as jnp
    key = jax.random.PRNGKey(0)
    params, n_in = [], workload.n_inputs
    for size, _ in workload.layers:
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (n_in, size), jnp.float32) / np.sqrt(n_in),
                       jnp.zeros(size, jnp.float32)))
        n_in = size
    return params, key
