"""The GPU peers of `fastmlp bench --device cuda`: PyTorch CUDA eager and JAX on the GPU
(jit + lax.scan), training each workload of fastmlp.bench.workloads with the same network, loss,
optimizer, batch size and data size as fastmlp.bench.run's CPU peers.

`fastmlp bench` times its peers on the CPU (their CPU builds); on a GPU machine check.py
calls these instead, in the same process as fastmlp's own figures. float32 throughout, and
no TF32: PyTorch's and JAX's float32 matrix products run in full float32, as fastmlp's do.

Each rate is steady-state steps per second, compilation and warm-up excluded: whole calls
of a fixed number of steps, ended by a device synchronisation, repeated until they last
`seconds`, best of `repeats`.
"""
import time

from fastmlp.bench.workloads import jax_params

DATA_BATCHES = 16  # distinct batches of synthetic data per workload, as fastmlp.bench.run's peers
SCAN_STEPS = 500   # steps per call of JAX's compiled scan (its length is fixed at compile time)


def _best_rate(run, steps_per_call, seconds, repeats):
    """steps/s: run() does steps_per_call steps and returns after the device has finished."""
    run()  # warm up: compile, allocate, tune
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or calls >= 1 << 20:
            break
        calls = max(calls + 1, int(calls * min(10.0, 1.5 * seconds / max(elapsed, 1e-6))))
    best = elapsed
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, time.perf_counter() - start)
    return calls * steps_per_call / best


def torch_cuda_rate(workload, seconds, repeats, device="cuda"):
    """PyTorch eager on the GPU: one Python-level step at a time, as users write it.
    (device="cpu" runs the same code on the CPU, for the tests.)"""
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("PyTorch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    F = torch.nn.functional
    acts = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "identity": torch.nn.Identity,
            "softmax": torch.nn.Identity}  # softmax folds into cross_entropy's logits
    modules, n_in = [], workload.n_inputs
    for size, act in workload.layers:
        modules += [torch.nn.Linear(n_in, size), acts[act]()]
        n_in = size
    if workload.layers[-1][1] == "sigmoid":
        modules = modules[:-1]  # BCE-with-logits takes the logits
    net = torch.nn.Sequential(*modules).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=workload.lr) if workload.optimizer == "sgd" \
        else torch.optim.Adam(net.parameters(), lr=workload.lr)
    X, y = workload.make_data(DATA_BATCHES * workload.batch_size)
    X = torch.as_tensor(X, dtype=torch.float32, device=device)
    if workload.loss == "cross_entropy":
        y = torch.as_tensor(y, dtype=torch.int64, device=device)
        loss_fn = lambda out, t: F.cross_entropy(out, t)
    elif workload.loss == "binary_cross_entropy":
        y = torch.as_tensor(y, dtype=torch.float32, device=device).reshape(-1, 1)
        loss_fn = lambda out, t: F.binary_cross_entropy_with_logits(out, t)
    else:
        y = torch.as_tensor(y, dtype=torch.float32, device=device).reshape(-1, 1)
        loss_fn = lambda out, t: 0.5 * F.mse_loss(out, t)
    n, batch = len(X), workload.batch_size
    generator = torch.Generator(device=device).manual_seed(0)
    steps_per_call = max(1, -(-n // batch)) * 4  # four epochs a call
    state = {"perm": torch.randperm(n, device=device, generator=generator), "start": 0}

    def run():
        for _ in range(steps_per_call):
            start = state["start"]
            if start == 0:
                state["perm"] = torch.randperm(n, device=device, generator=generator)
            index = state["perm"][start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(X[index]), y[index]).backward()
            opt.step()
            state["start"] = start + batch if start + batch < n else 0
        synchronize()

    return _best_rate(run, steps_per_call, seconds, repeats)


def jax_gpu_rate(workload, seconds, repeats, platform="gpu"):
    """JAX on the GPU: SCAN_STEPS steps per call of one jit-compiled lax.scan over the
    batches of a permutation drawn on the device before each call. (platform="cpu" runs
    it on the CPU, for the tests.)"""
    import jax
    import jax.numpy as jnp
    import optax
    try:
        devices = jax.devices(platform)
    except RuntimeError as error:
        raise RuntimeError(f"JAX sees no {platform} device: {error}") from None
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32
    with jax.default_device(devices[0]):
        return _jax_rate(workload, seconds, repeats, jax, jnp, optax)


def _jax_rate(workload, seconds, repeats, jax, jnp, optax):
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
    X = jnp.asarray(X, jnp.float32)
    y = jnp.asarray(y, jnp.int32 if workload.loss == "cross_entropy" else jnp.float32)
    n, batch = X.shape[0], workload.batch_size
    batches = max(1, n // batch)

    def step(carry, i):
        params, state, perm = carry
        index = jax.lax.dynamic_slice_in_dim(perm, (i % batches) * batch, batch)
        grads = jax.grad(loss_fn)(params, X[index], y[index])
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state, perm), None

    @jax.jit
    def train(params, state, perm):
        return jax.lax.scan(step, (params, state, perm), jnp.arange(SCAN_STEPS))[0][:2]

    # A fresh permutation per call (fastmlp reshuffles every epoch, on the host; drawing one
    # inside the scan per epoch would need a conditional or a sort in every step).
    permute = jax.jit(lambda key, call: jax.random.permutation(jax.random.fold_in(key, call),
                                                               n))
    carry = {"value": (params, opt.init(params)), "call": 0}

    def run():
        perm = permute(key, carry["call"])
        carry["value"] = train(*carry["value"], perm)
        carry["call"] += 1
        jax.block_until_ready(carry["value"])

    return _best_rate(run, SCAN_STEPS, seconds, repeats)


PEERS = {"torch-cuda": torch_cuda_rate, "jax-gpu": jax_gpu_rate}
