"""No fresh compile for inputs or models that differ only in flags numba would type apart.

Numba compiles a kernel once per signature, and an array's type includes its write flag: a
read-only array (a memory-mapped file opened "r", a buffer from pickle protocol 5, an array a
user froze) or an unpickled layer table (pickle drops the flag) would otherwise cost a
compile of seconds. Each test warms the kernels up with plain arrays, then counts the
signatures of every compiled entry point before and after the variant.
"""
import os
import pickle

import numba
import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.cpu import specialize
from fastmlp.cpu import steps as cpu_steps
from fastmlp.inputs.validation import check_inputs, check_targets

ENTRY_POINTS = ("train_steps", "forward_rows", "evaluate_rows", "gradient_rows")

def signature_count():
    """Compiled signatures of the generic entry points and of every generated kernel."""
    count = sum(len(getattr(cpu_steps, name).signatures) for name in ENTRY_POINTS)
    return count + sum(len(k.signatures) for k in specialize._loaded.values() if k is not None)


def use(model, X, y):
    """Every compiled path a user reaches: fit, forward, loss, evaluate, gradients."""
    model.fit(X, y, epochs=1, batch_size=16, progress=False)
    model.forward(X)
    model.evaluate(X, y)
    model.gradients(X[:8], y[:8])


# A network past config.SPECIALIZE_MAX_WEIGHTS (the generic kernel) and one under it.
NETWORKS = {"generic": [(16, "relu"), (3, "softmax")], "generated": [(4, "tanh"), (3, "softmax")]}


@pytest.fixture(params=sorted(NETWORKS))
def warm(request):
    """(model, X, y) after one use of each path with plain, writable arrays."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = MLP(6, NETWORKS[request.param], seed=0)
    use(model, X, y)
    return model, X, y


def frozen(X, y, tmp_path):
    X, y = X.copy(), y.copy()
    X.flags.writeable = y.flags.writeable = False
    return X, y


def memory_mapped(X, y, tmp_path):
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert isinstance(Xm, np.memmap) and not Xm.flags.writeable
    return Xm, np.load(tmp_path / "y.npy", mmap_mode="r")


def unpickled_out_of_band(X, y, tmp_path):
    buffers = []
    data = pickle.dumps((X, y), protocol=5, buffer_callback=buffers.append)
    Xp, yp = pickle.loads(data, buffers=[bytes(b.raw()) for b in buffers])
    assert not Xp.flags.writeable  # arrays over immutable bytes
    return Xp, yp


@pytest.mark.parametrize("variant", [frozen, memory_mapped, unpickled_out_of_band],
                         ids=lambda f: f.__name__)
def test_read_only_inputs_do_not_recompile(warm, variant, tmp_path):
    model, X, y = warm
    Xv, yv = variant(X, y, tmp_path)
    # The validated arrays type as the plain ones do (this check is independent of what
    # other tests have compiled in this process) ...
    n_out, loss = model.spec.n_outputs, model.loss_name
    assert numba.typeof(check_inputs(Xv, 6, model.dtype)) == \
        numba.typeof(check_inputs(X, 6, model.dtype))
    assert numba.typeof(check_targets(yv, len(y), loss, n_out, model.dtype)) == \
        numba.typeof(check_targets(y, len(y), loss, n_out, model.dtype))
    # ... and nothing compiles.
    before = signature_count()
    use(model, Xv, yv)
    assert signature_count() == before


def test_in_band_unpickled_inputs_do_not_recompile(warm):
    model, X, y = warm
    Xp, yp = pickle.loads(pickle.dumps((X, y), protocol=pickle.HIGHEST_PROTOCOL))
    before = signature_count()
    use(model, Xp, yp)
    assert signature_count() == before


def test_unpickled_model_does_not_recompile(warm):
    model, X, y = warm
    copy = pickle.loads(pickle.dumps(model))
    before = signature_count()
    use(copy, X, y)
    assert signature_count() == before


def test_loaded_model_does_not_recompile(warm, tmp_path):
    model, X, y = warm
    path = os.fspath(tmp_path / "model.npz")
    model.save(path)
    loaded = MLP.load(path)
    before = signature_count()
    use(loaded, X, y)
    assert signature_count() == before


def test_weighted_and_unweighted_calls_share_one_compiled_signature():
    """Sample weights are always an array (empty when unweighted), so evaluate_rows and
    gradient_rows (and the batch_loss and network_backward inside them and train_steps)
    compile once, weighted or not."""
    rng = np.random.default_rng(1)
    X = rng.random((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    w = rng.random(40)
    model = MLP(6, NETWORKS["generic"], seed=0)
    for weights in (None, w):
        model.fit(X, y, epochs=1, batch_size=16, progress=False, sample_weight=weights)
        model.evaluate(X, y, sample_weight=weights)
        model.gradients(X[:8], y[:8], sample_weight=None if weights is None else w[:8])
    for kernel in (cpu_steps.evaluate_rows, cpu_steps.gradient_rows):
        float32 = [sig for sig in kernel.signatures if "float32" in str(sig)]
        assert len(float32) == 1, (kernel.__name__, float32)


def test_inference_and_the_loss_share_one_compiled_signature():
    """forward, loss, evaluate and the validation loss of a fit all run evaluate_rows (its
    unused outputs or targets empty), with one signature per dtype: a cold process compiles
    the forward chain for evaluation once, not once for inference and once for the loss."""
    rng = np.random.default_rng(2)
    X = rng.random((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = MLP(6, [(16, "relu"), (3, "softmax")], seed=0)
    model.fit(X, y, epochs=1, batch_size=16, progress=False, validation_data=(X[:8], y[:8]))
    model.forward(X)
    model.loss(X, y)
    model.evaluate(X, y)
    float32 = [sig for sig in cpu_steps.evaluate_rows.signatures if "float32" in str(sig)]
    assert len(float32) == 1, float32
