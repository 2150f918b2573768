"""The `fashion` row of `fastmlp bench`: real data, every library trained the same way.

Fashion-MNIST (60,000 training and 10,000 test images of 28x28 pixels, 10 classes), one
784 -> 256 relu -> 10 softmax network, Adam lr 1e-3, batch 128, FASHION_EPOCHS epochs,
trained by fastmlp, JAX (jit + lax.scan over an epoch's batches), PyTorch (eager) and
scikit-learn's MLPClassifier, each timed from start to end of its training with compilation
excluded (every runner warms up first), then scored on the test images.
"""
import time
import warnings

import numpy as np

from .workloads import WORKLOADS

FASHION_EPOCHS = 5


class DataMissing(Exception):
    """The data set's files are not on this machine; the message says how to get them."""


def load_fashion(split, directory=None):
    """(X float32 in [0, 1], (n, 784); y int64 (n,)) of the train or test split, from
    `directory` or the places datasets.load_mnist searches (Debian's package among them)."""
    from ..datasets import load_mnist
    try:
        return load_mnist(split=split, variant="fashion", path=directory)
    except FileNotFoundError as exc:
        raise DataMissing(str(exc)) from exc


# -- the runners: each returns (seconds of training, samples trained, test accuracy) -------

def fastmlp_fashion(workload, data, epochs, device="cpu"):
    (X, y), (X_test, y_test) = data
    workload.build(seed=0, device=device).fit(X[:2048], y[:2048], epochs=1,
                                              batch_size=workload.batch_size,
                                              progress=False)  # compile (or load) the kernels
    model = workload.build(seed=0, device=device)
    start = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=workload.batch_size, progress=False)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    return seconds, epochs * len(X), accuracy


def torch_fashion(workload, data, epochs):
    import torch
    (X, y), (X_test, y_test) = data
    torch.manual_seed(0)
    (hidden, _), (classes, _) = workload.layers
    net = torch.nn.Sequential(torch.nn.Linear(workload.n_inputs, hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, classes))
    opt = torch.optim.Adam(net.parameters(), lr=workload.lr)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    batch = workload.batch_size

    def epoch(n_rows):
        perm = torch.randperm(n_rows, generator=generator)
        for start in range(0, n_rows, batch):
            index = perm[start:start + batch]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(X[index]), y[index]).backward()
            opt.step()

    epoch(min(2048, len(X)))  # warm up on a part, then start again from the initial weights
    torch.manual_seed(0)
    for layer in (net[0], net[2]):
        layer.reset_parameters()
    opt = torch.optim.Adam(net.parameters(), lr=workload.lr)
    start = time.perf_counter()
    for _ in range(epochs):
        epoch(len(X))
    seconds = time.perf_counter() - start
    with torch.inference_mode():
        predicted = net(torch.from_numpy(X_test)).argmax(1).numpy()
    return seconds, epochs * len(X), float(np.mean(predicted == y_test))


def jax_fashion(workload, data, epochs):
    import jax
    import jax.numpy as jnp
    import optax
    from .workloads import jax_params
    (X, y), (X_test, y_test) = data
    batch = workload.batch_size
    batches = len(X) // batch  # scan needs equal batches: the remainder is left out
    params, key = jax_params(workload)

    def logits(params, xb):
        (W1, b1), (W2, b2) = params
        return jax.nn.relu(xb @ W1 + b1) @ W2 + b2

    def loss_fn(params, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, xb), yb).mean()

    opt = optax.adam(workload.lr)
    Xj, yj = jnp.asarray(X), jnp.asarray(y, jnp.int32)

    @jax.jit
    def epoch(params, state, key):
        perm = jax.random.permutation(key, len(X))[:batches * batch].reshape(batches, batch)

        def step(carry, index):
            params, state = carry
            grads = jax.grad(loss_fn)(params, Xj[index], yj[index])
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, state), perm)[0]

    state = opt.init(params)
    jax.block_until_ready(epoch(params, state, key))  # compile
    start = time.perf_counter()
    for _ in range(epochs):
        key, sub = jax.random.split(key)
        params, state = epoch(params, state, sub)
    jax.block_until_ready(params)
    seconds = time.perf_counter() - start
    predicted = np.asarray(jnp.argmax(logits(params, jnp.asarray(X_test)), axis=1))
    return seconds, epochs * batches * batch, float(np.mean(predicted == y_test))


def sklearn_fashion(workload, data, epochs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    (X, y), (X_test, y_test) = data
    model = MLPClassifier(hidden_layer_sizes=(workload.layers[0][0],), activation="relu",
                          solver="adam", alpha=0.0, batch_size=workload.batch_size,
                          learning_rate_init=workload.lr, max_iter=epochs, tol=0.0,
                          n_iter_no_change=epochs + 1, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the epoch count
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    return seconds, epochs * len(X), float(model.score(X_test, y_test))


RUNNERS = {"fastmlp": fastmlp_fashion, "jax": jax_fashion, "torch": torch_fashion,
           "sklearn": sklearn_fashion}


def faster(run, best):
    """Whether a (seconds, samples, accuracy) run beats `best` (None: nothing yet) in
    samples a second."""
    return best is None or run[1] / run[0] > best[1] / best[0]


def train_here(libraries, repeats, directory, epochs, device, data):
    """{who: (seconds, samples, accuracy)}: the fastest of `repeats` runs of each library,
    all in this process."""
    runs = {}
    for who in libraries:
        for _ in range(max(1, repeats)):
            args = (WORKLOADS["fashion"], data, epochs) + ((device,) if who == "fastmlp" else ())
            run = RUNNERS[who](*args)
            if faster(run, runs.get(who)):
                runs[who] = run
    return runs


def fashion_row(peers, repeats, directory=None, log=print, device="cpu",
                epochs=FASHION_EPOCHS, train=None):
    """{who: figures} for the fashion workload, or None (with a message) without the data.
    train(libraries, repeats, directory, epochs, device, data) -> {who: (seconds, samples,
    accuracy)} runs them: train_here by default, isolated.isolated_fashion for a fresh
    process per run."""
    workload = WORKLOADS["fashion"]
    try:
        data = load_fashion("train", directory), load_fashion("test", directory)
    except DataMissing as exc:
        log(f"(fashion skipped: {exc})")
        return None
    flops_per_sample = workload.flops_per_step() / workload.batch_size
    row = {}
    libraries = ["fastmlp"] + [p for p in peers if p in RUNNERS]
    runs = (train or train_here)(libraries, repeats, directory, epochs, device, data)
    for who in libraries:
        seconds, samples, accuracy = runs[who]
        rate = samples / seconds
        row[who] = {"steps_per_s": rate / workload.batch_size, "samples_per_s": rate,
                    "gflops": rate * flops_per_sample / 1e9, "accuracy": accuracy,
                    "seconds": seconds}
    return row
