"""`fastmlp bench`: the benchmark workloads on fastmlp and, when installed, PyTorch (eager) and
JAX (jit + lax.scan), in one process and one run, beside numpy's sgemm roofline.

Every figure excludes compilation: each runner warms up first, then times whole training
runs of at least `seconds` seconds, best of `repeats`. The `fashion` workload trains on
Fashion-MNIST instead (bench_fashion.py, with scikit-learn as a fourth trainer and test
accuracy), and mnist-small and mnist-wide add inference rows: `forward` on 10,000 rows
against ONNX Runtime and PyTorch (bench_inference.py).
"""
import contextlib
import json
import math
import os
import time

import numpy as np

from .. import config
from .workloads import WORKLOADS, jax_params

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


def sgemm_gflops(n=1024, repeats=5):
    """numpy's float32 GEMM rate on this machine: the roofline for the GEMM-bound workloads."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    out = np.empty_like(a)
    np.dot(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


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
#: Every library compared somewhere: training (torch, jax), the fashion row (also sklearn),
#: inference (also onnxruntime).
ALL_PEERS = ("torch", "jax", "sklearn", "onnxruntime")
_PEER_MODULES = {"torch": "torch", "jax": "optax", "sklearn": "sklearn",
                 "onnxruntime": "onnxruntime"}


def _installed(peers, log):
    found = []
    for peer in peers:
        try:
            __import__(_PEER_MODULES[peer])
            found.append(peer)
        except ImportError:
            log(f"({peer} not installed: pip install 'fastmlp[peers]' to compare)")
    return found


def run_bench(names=None, seconds=1.0, repeats=3, peers=("torch", "jax"), device="cpu",
              log=print, fashion_dir=None):
    """{"roofline_sgemm_gflops", "device", "workloads": {name: {who: figures}},
    "inference": {name: {who: figures}}}; the peers run on the CPU (their CPU builds),
    beside fastmlp on `device`. Inference rows run on the CPU, for the selected workloads
    of bench_inference.INFERENCE_WORKLOADS."""
    from .fashion import fashion_row
    from .inference import inference_rows
    names = names or list(WORKLOADS)
    roofline = sgemm_gflops()
    results = {"roofline_sgemm_gflops": roofline, "device": device, "workloads": {},
               "inference": {}, "load_average": _load_average()}
    installed = _installed(peers, log)
    available = {peer: PEERS[peer] for peer in installed if peer in PEERS}
    for name in names:
        w = WORKLOADS[name]
        if name == "fashion":
            row = fashion_row(installed, repeats, fashion_dir, log, device)
            if row is not None:
                _add_ratios(row)
                results["workloads"][name] = row
            continue
        flops = w.flops_per_step()
        row = {}
        for who, rate_fn in [("fastmlp", lambda w, s, r: fastmlp_rate(w, s, r, device))] + \
                list(available.items()):
            rate = rate_fn(w, seconds, repeats)
            row[who] = {"steps_per_s": rate, "samples_per_s": rate * w.batch_size,
                        "gflops": rate * flops / 1e9}
        _add_ratios(row)
        results["workloads"][name] = row
    if device == "cpu":
        results["inference"] = inference_rows(names, installed, seconds, repeats, log)
    # Measured again at the end: on a shared host the load drifts during a run, and a
    # roofline that moved says the ratios in between are not to be trusted.
    results["roofline_sgemm_gflops_end"] = sgemm_gflops()
    results["load_average_end"] = _load_average()
    return results


def _load_average():
    """The host's 1-minute load average (None where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _format_load(load):
    return "n/a" if load is None else f"{load:.1f}"


def _add_ratios(row):
    for who, figures in row.items():
        if who != "fastmlp":
            figures["fastmlp_ratio"] = row["fastmlp"]["steps_per_s"] / figures["steps_per_s"]


def format_table(results):
    from ..cpu.threads import most_threads
    roofline = results["roofline_sgemm_gflops"]
    lines = [f"numpy sgemm roofline: {roofline:.0f} GFLOP/s "
             f"(float32, 1024x1024); fastmlp on {results['device']} (CPU: up to "
             f"{most_threads()} threads, timed); torch, JAX: their default threads"]
    if "roofline_sgemm_gflops_end" in results:
        lines.append(f"at the end of the run: {results['roofline_sgemm_gflops_end']:.0f} "
                     f"GFLOP/s; load average {_format_load(results.get('load_average'))} at "
                     f"the start, {_format_load(results.get('load_average_end'))} at the end")
    lines.append("")
    header = f"{'workload':<12} {'who':<8} {'steps/s':>11} {'samples/s':>12} {'GFLOP/s':>9} " \
             f"{'% sgemm':>8} {'fastmlp x':>10} {'test acc':>9}"
    lines += [header, "-" * len(header)]
    for name, row in results["workloads"].items():
        for who, r in row.items():
            ratio = f"{r['fastmlp_ratio']:.2f}x" if "fastmlp_ratio" in r else ""
            accuracy = f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else ""
            lines.append(f"{name:<12} {who:<8} {r['steps_per_s']:>11,.0f} "
                         f"{r['samples_per_s']:>12,.0f} {r['gflops']:>9.1f} "
                         f"{100 * r['gflops'] / roofline:>7.0f}% {ratio:>10} {accuracy:>9}")
    if results.get("inference"):
        from .inference import INFERENCE_ROWS
        header = f"{'forward':<12} {'who':<12} {'rows/s':>12} {'fastmlp x':>10}"
        lines += ["", f"inference: forward on {INFERENCE_ROWS:,} rows, float32", header,
                  "-" * len(header)]
        for name, row in results["inference"].items():
            for who, r in row.items():
                ratio = f"{r['fastmlp_ratio']:.2f}x" if "fastmlp_ratio" in r else ""
                lines.append(f"{name:<12} {who:<12} {r['rows_per_s']:>12,.0f} {ratio:>10}")
    return "\n".join(lines)


def main(args):
    results = run_bench(args.workload, seconds=args.seconds, repeats=args.repeats,
                        peers=() if args.no_peers else ALL_PEERS, device=args.device)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0
