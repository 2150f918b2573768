"""Steady-state training rates of one workload: fastmlp and its peers (PyTorch eager, JAX jit +
lax.scan), each leaving its compile out. `fastmlp bench` calls these in a fresh process per
library (isolated.py) or, with --same-process, all in its own."""
import contextlib
import math
import time

from .. import config
from .workloads import jax_params

DATA_BATCHES = 16  # distinct batches of synthetic data per workload (xor: its 4 points)


def _best_rate(run, steps, seconds, repeats):
    """steps/s of run(steps), scaling steps up until one run lasts >= seconds; the best of
    `repeats` runs at that size, after the run that found it. That run is not timed: a fit
    that long may train with another kernel than the shorter ones before it (a generated
    kernel, compiled then; cpu/specialize.py)."""
    run(steps)  # warm up (compile, caches)
    while True:
        start = time.perf_counter()
        run(steps)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or steps >= 1 << 30:
            break
        steps = int(steps * min(10.0, 1.5 * seconds / max(elapsed, 1e-6)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        best = min(best, time.perf_counter() - start)
    return steps / best


@contextlib.contextmanager
def generated_kernels():
    """Fits inside train a small network with the kernel generated for it (config.SPECIALIZE
    True, compiling it if need be), whatever the "auto" rule would choose for their length:
    what a benchmark that leaves compiling out should time."""
    saved, config.SPECIALIZE = config.SPECIALIZE, True
    try:
        yield
    finally:
        config.SPECIALIZE = saved


def fastmlp_rate(workload, seconds, repeats, device="cpu"):
    """Steps/s of fit on the workload. Like every peer's figure it leaves compiling out, so a
    small network trains with its generated kernel (generated_kernels; compiled in the
    warm-up)."""
    if device == "cuda":
        return _cuda_rate(workload, seconds, repeats)
    model = workload.build(seed=0, device=device)
    X, y = workload.make_data(DATA_BATCHES * workload.batch_size)
    steps_per_epoch = math.ceil(len(X) / workload.batch_size)

    def run(steps):
        model.fit(X, y, epochs=max(1, steps // steps_per_epoch),
                  batch_size=workload.batch_size, progress=False)

    with generated_kernels():
        return _best_rate(lambda s: run(s), steps_per_epoch, seconds, repeats) \
            if steps_per_epoch > 1 else _best_rate(run, 1000, seconds, repeats)


def _cuda_rate(workload, seconds, repeats):
    """Steady-state steps/s on device="cuda" (cuda/bench.py times between device syncs)."""
    from .cuda import time_train_steps
    steps, best = 10, 0.0
    for _ in range(repeats):
        result = time_train_steps(workload, steps=steps)
        best = max(best, result["steps_per_s"])
        if result["seconds"] < seconds:  # aim the next sample at `seconds`
            steps = max(steps, int(steps * seconds / max(result["seconds"], 1e-6)))
    return best


def torch_rate(workload, seconds, repeats):
    import torch

    torch.manual_seed(0)  # threads: torch's default, one per core (fastmlp's: all cores too)
    F = torch.nn.functional
    acts = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "identity": torch.nn.Identity,
            "softmax": torch.nn.Identity}  # softmax folds into cross_entropy's logits
    modules, n_in = [], workload.n_inputs
    for size, act in workload.layers:
        modules += [torch.nn.Linear(n_in, size), acts[act]()]
        n_in = size
    net = torch.nn.Sequential(*modules)
    opt = torch.optim.SGD(net.parameters(), lr=workload.lr) if workload.optimizer == "sgd" \
        else torch.optim.Adam(net.parameters(), lr=workload.lr)
    X, y = workload.make_data(DATA_BATCHES * workload.batch_size)
    X = torch.as_tensor(X, dtype=torch.float32)
    if workload.loss == "cross_entropy":
        y = torch.as_tensor(y, dtype=torch.int64)
        loss_fn = lambda out, t: F.cross_entropy(out, t)
    elif workload.loss == "binary_cross_entropy":
        y = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        loss_fn = lambda out, t: F.binary_cross_entropy_with_logits(out, t)
    else:
        y = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        loss_fn = lambda out, t: 0.5 * F.mse_loss(out, t)
    if workload.layers[-1][1] == "sigmoid":
        net = net[:-1]  # BCE-with-logits takes the logits
    n, batch = len(X), workload.batch_size
    generator = torch.Generator().manual_seed(0)

    def run(steps):
        perm = torch.randperm(n, generator=generator)
        for step in range(steps):
            start = (step * batch) % n
            if start == 0:
                perm = torch.randperm(n, generator=generator)
            index = perm[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(X[index]), y[index]).backward()
            opt.step()

    return _best_rate(run, 20, seconds, repeats)


def jax_rate(workload, seconds, repeats):
    import jax
    import jax.numpy as jnp
    import optax

    params, key = jax_params(workload)
    acts = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "identity": lambda z: z}
    hidden = [acts[act] for _, act in workload.layers[:-1]]

    def loss_fn(params, xb, yb):
        a = xb
        for (W, b), g in zip(params[:-1], hidden):
            a = g(a @ W + b)
        z = a @ params[-1][0] + params[-1][1]
        if workload.loss == "cross_entropy":
            return optax.softmax_cross_entropy_with_integer_labels(z, yb).mean()
        if workload.loss == "binary_cross_entropy":
            return optax.sigmoid_binary_cross_entropy(z[:, 0], yb).mean()
        return 0.5 * jnp.mean((z[:, 0] - yb) ** 2)

    opt = optax.sgd(workload.lr) if workload.optimizer == "sgd" else optax.adam(workload.lr)
    X, y = workload.make_data(DATA_BATCHES * workload.batch_size)
    X = jnp.asarray(X)
    y = jnp.asarray(y, jnp.int32 if workload.loss == "cross_entropy" else jnp.float32)
    n, batch = X.shape[0], workload.batch_size
    batches = n // batch

    def step(carry, i):
        params, state, perm = carry
        index = jax.lax.dynamic_slice_in_dim(perm, (i % batches) * batch, batch)
        grads = jax.grad(loss_fn)(params, X[index], y[index])
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state, perm), None

    @jax.jit
    def train(params, state, perm, indices):
        return jax.lax.scan(step, (params, state, perm), indices)[0]

    state = [opt.init(params)]
    perm = jax.random.permutation(key, n)
    compiled = {}

    def run(steps):
        if steps not in compiled:  # scan length is static: compile once per length
            compiled[steps] = jnp.arange(steps)
            jax.block_until_ready(train(params, state[0], perm, compiled[steps]))
        out = train(params, state[0], perm, compiled[steps])
        jax.block_until_ready(out)

    rate = _best_rate(run, 100, seconds, repeats)
    return rate


PEERS = {"torch": torch_rate, "jax": jax_rate}
