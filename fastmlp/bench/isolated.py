"""Each library timed in a process of its own, and the cold first result.

Timed side by side in one process, the libraries slow each other down: a thread pool that
one leaves spinning (OpenMP's, XLA's) takes the cores the next one is timed on. So
`fastmlp bench` runs every (library, workload) figure in a fresh interpreter, the libraries
alternated round by round, and keeps each one's best round.

    python -m fastmlp.bench.isolated rate WHO WORKLOAD SECONDS DEVICE  # one JSON line
    python -m fastmlp.bench.isolated fashion WHO DIR EPOCHS DEVICE     # one JSON line
    python -m fastmlp.bench.isolated forward WHO WORKLOAD SECONDS REPEATS ROWS OUT.npy
    python -m fastmlp.bench.isolated first WHO                         # the first result

`first` is the cold-start row: the whole first result of a new user's script (imports, data,
fit, predict) for WHO in fastmlp, torch, jax, sklearn (784-256-10 relu/softmax, Adam, batch
128, 4,096 rows, one epoch, then predict), or fastmlp-sklearn and sklearn-digits
(`MLPClassifier` on digits, (100,), adam, 20 epochs). The parent times it from spawn to exit;
for fastmlp it runs once with empty caches (a fresh install) and once more with the caches
that run filled (warm).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from .fashion import faster

FIRST_RESULT = ("fastmlp", "torch", "jax", "sklearn")
FIRST_RESULT_DROP_IN = ("fastmlp-sklearn", "sklearn-digits")
_ROWS, _CLASSES, _BATCH = 4096, 10, 128


def _first_data():
    import numpy as np
    rng = np.random.default_rng(0)
    return (rng.random((_ROWS, 784), dtype=np.float32),
            rng.integers(0, _CLASSES, _ROWS))


def _first_fastmlp():
    import fastmlp
    X, y = _first_data()
    model = fastmlp.MLP(784, [(256, "relu"), (10, "softmax")], optimizer=fastmlp.Adam(),
                        dtype="float32", seed=0)
    model.fit(X, y, epochs=1, batch_size=_BATCH, progress=False)
    return model.predict(X)


def _first_torch():
    import torch
    X, y = _first_data()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    perm = torch.randperm(_ROWS)
    for start in range(0, _ROWS, _BATCH):
        index = perm[start:start + _BATCH]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(X[index]), y[index]).backward()
        opt.step()
    with torch.no_grad():
        return net(X).argmax(1).numpy()


def _first_jax():
    import jax
    import jax.numpy as jnp
    import optax
    X, y = _first_data()
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    params = [(jax.random.normal(k1, (784, 256)) * 0.05, jnp.zeros(256)),
              (jax.random.normal(k2, (256, 10)) * 0.05, jnp.zeros(10))]
    opt = optax.adam(1e-3)

    def logits(params, xb):
        return jax.nn.relu(xb @ params[0][0] + params[0][1]) @ params[1][0] + params[1][1]

    def loss(params, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, xb), yb).mean()

    X, y = jnp.asarray(X), jnp.asarray(y, jnp.int32)
    batches = jax.random.permutation(k3, _ROWS).reshape(-1, _BATCH)

    @jax.jit
    def epoch(params, state):
        def step(carry, index):
            params, state = carry
            grads = jax.grad(loss)(params, X[index], y[index])
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None
        return jax.lax.scan(step, (params, state), batches)[0]

    params, _ = epoch(params, opt.init(params))
    return jax.device_get(jnp.argmax(jax.jit(logits)(params, X), 1))


def _first_sklearn():
    import warnings
    from sklearn.neural_network import MLPClassifier
    X, y = _first_data()
    model = MLPClassifier((256,), solver="adam", batch_size=_BATCH, max_iter=1,
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: ConvergenceWarning
        model.fit(X, y)
    return model.predict(X)


def _first_digits(estimator_class):
    import warnings
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    model = estimator_class((100,), solver="adam", max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model.predict(X)


def _first(who):
    if who == "fastmlp-sklearn":
        from fastmlp.sklearn import MLPClassifier
        return _first_digits(MLPClassifier)
    if who == "sklearn-digits":
        from sklearn.neural_network import MLPClassifier
        return _first_digits(MLPClassifier)
    return {"fastmlp": _first_fastmlp, "torch": _first_torch, "jax": _first_jax,
            "sklearn": _first_sklearn}[who]()


def _rate(who, workload, seconds, device):
    from .rates import PEERS, fastmlp_rate
    from .workloads import WORKLOADS
    w = WORKLOADS[workload]
    if who == "fastmlp":
        return fastmlp_rate(w, seconds, 1, device)
    return PEERS[who](w, seconds, 1)


def child(argv):
    if argv[0] == "rate":
        who, workload, seconds, device = argv[1], argv[2], float(argv[3]), argv[4]
        print(json.dumps({"steps_per_s": _rate(who, workload, seconds, device)}))
    elif argv[0] == "fashion":
        from .fashion import RUNNERS, load_fashion
        from .workloads import WORKLOADS
        who, directory, epochs, device = argv[1], argv[2] or None, int(argv[3]), argv[4]
        data = load_fashion("train", directory), load_fashion("test", directory)
        args = (WORKLOADS["fashion"], data, epochs) + ((device,) if who == "fastmlp" else ())
        seconds, samples, accuracy = RUNNERS[who](*args)
        print(json.dumps({"seconds": seconds, "samples": samples, "accuracy": accuracy}))
    elif argv[0] == "forward":
        from .inference import forward_rate
        who, workload, seconds, repeats, rows, out = argv[1:7]
        rate = forward_rate(who, workload, float(seconds), int(repeats), int(rows), out)
        print(json.dumps({"rows_per_s": rate}))
    elif argv[0] == "first":
        _first(argv[1])
        print(json.dumps({"done": True}))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    return 0


def _spawn(args, env=None, timeout=1800):
    """(the child's JSON record, wall seconds from spawn to exit)."""
    environ = dict(os.environ, **(env or {}))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fastmlp.bench.isolated", *args],
                          env=environ, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def isolated_rates(workload, libraries, seconds, rounds, device="cpu"):
    """{who: best steps/s over `rounds` fresh processes}, the libraries' order rotated from
    round to round."""
    best = {}
    for r in range(rounds):
        order = libraries[r % len(libraries):] + libraries[:r % len(libraries)]
        for who in order:
            record, _ = _spawn(["rate", who, workload, str(seconds),
                                device if who == "fastmlp" else "cpu"])
            best[who] = max(best.get(who, 0.0), record["steps_per_s"])
    return {who: best[who] for who in libraries}


def isolated_fashion(libraries, rounds, directory, epochs, device="cpu", data=None):
    """{who: (seconds, samples, accuracy)} of the fastest of `rounds` Fashion-MNIST runs,
    each in a fresh process (which loads the files itself: `data` is not used), the
    libraries alternated (fashion.fashion_row's `train`)."""
    best = {}
    for r in range(rounds):
        order = libraries[r % len(libraries):] + libraries[:r % len(libraries)]
        for who in order:
            record, _ = _spawn(["fashion", who, directory or "", str(epochs),
                                device if who == "fastmlp" else "cpu"])
            run = (record["seconds"], record["samples"], record["accuracy"])
            if faster(run, best.get(who)):
                best[who] = run
    return {who: best[who] for who in libraries}


def isolated_forward(workload, libraries, seconds, rounds, rows):
    """({who: best rows/s of forward over `rounds` fresh processes}, {who: its output}),
    the libraries rotated from round to round."""
    import numpy as np
    best, outputs = {}, {}
    with tempfile.TemporaryDirectory(prefix="fastmlp-forward-") as directory:
        for r in range(rounds):
            order = libraries[r % len(libraries):] + libraries[:r % len(libraries)]
            for who in order:
                out = os.path.join(directory, f"{who}.npy")
                record, _ = _spawn(["forward", who, workload, str(seconds), "1", str(rows),
                                    out])
                best[who] = max(best.get(who, 0.0), record["rows_per_s"])
                outputs.setdefault(who, np.load(out))
    return {who: best[who] for who in libraries}, outputs


def first_result_rows(libraries, rounds):
    """{who: {"cold_s", "warm_s"}}: wall seconds of the first result in a fresh process,
    best of `rounds`. fastmlp's cold runs start from empty kernel caches, its warm ones
    from the caches its cold run filled; the peers keep no compiled code between processes,
    so each of their runs is both."""
    rows = {}
    for r in range(rounds):
        order = libraries[r % len(libraries):] + libraries[:r % len(libraries)]
        for who in order:
            figures = rows.setdefault(who, {"cold_s": float("inf"), "warm_s": float("inf")})
            if who.startswith("fastmlp"):
                with tempfile.TemporaryDirectory(prefix="fastmlp-cold-") as cache:
                    env = {"NUMBA_CACHE_DIR": cache, "FASTMLP_CACHE_DIR": cache}
                    cold = _spawn(["first", who], env)[1]
                    warm = _spawn(["first", who], env)[1]
            else:
                cold = warm = _spawn(["first", who])[1]
            figures["cold_s"] = min(figures["cold_s"], cold)
            figures["warm_s"] = min(figures["warm_s"], warm)
    return rows


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
