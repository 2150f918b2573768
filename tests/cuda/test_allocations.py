"""Per training step nothing is allocated on the device and nothing crosses between host and
device: every allocation and copy is counted by wrapping numba.cuda's allocation functions,
the device array's copy methods and auto_device (the implicit copy of a host array passed
to a kernel), then compared between runs of 1 and of many steps."""
import collections
import sys

import numpy as np
import pytest
from numba import cuda

import fastmlp
from tests.runs import start as start_run
from fastmlp import config


@pytest.fixture
def traffic(monkeypatch):
    """A Counter of device allocations, host<->device copies and device-to-device copies."""
    counts = collections.Counter()

    def counting(kind, function):
        def wrapper(*args, **kwargs):
            counts[kind] += 1
            return function(*args, **kwargs)
        return wrapper

    for name in ("device_array", "to_device", "device_array_like", "mapped_array",
                 "managed_array"):
        if hasattr(cuda, name):
            monkeypatch.setattr(cuda, name, counting("device allocation", getattr(cuda, name)))
    monkeypatch.setattr(cuda, "pinned_array", counting("pinned host allocation",
                                                       cuda.pinned_array))
    devicearray = sys.modules["numba.cuda.cudadrv.devicearray"]
    monkeypatch.setattr(devicearray, "auto_device",
                        counting("implicit copy", devicearray.auto_device))
    array_type = type(cuda.device_array(1))
    copy_to_device, copy_to_host = array_type.copy_to_device, array_type.copy_to_host

    def to_device(self, source, *args, **kwargs):
        on_device = hasattr(source, "copy_to_host")
        counts["device to device" if on_device else "host to device"] += 1
        return copy_to_device(self, source, *args, **kwargs)

    def to_host(self, *args, **kwargs):
        counts["device to host"] += 1
        return copy_to_host(self, *args, **kwargs)

    monkeypatch.setattr(array_type, "copy_to_device", to_device)
    monkeypatch.setattr(array_type, "copy_to_host", to_host)
    return counts


def counted(counts, call):
    before = collections.Counter(counts)
    call()
    return collections.Counter({k: v - before[k] for k, v in counts.items() if v > before[k]})


@pytest.mark.parametrize("fused", [False, True])
def test_train_steps_allocates_and_copies_nothing_per_step(monkeypatch, traffic, fused):
    monkeypatch.setattr(config, "CUDA_FUSED", fused)
    rng = np.random.default_rng(0)
    model = fastmlp.MLP(3, [(5, "relu"), (2, "softmax")], optimizer=fastmlp.Adam(),
                        seed=0, device="cuda")
    X, T = model.as_arrays(rng.standard_normal((9, 3)), rng.integers(0, 2, 9))
    epochs = 4
    trainer = start_run(model, X, T, 3, False, epochs)
    one = counted(traffic, lambda: trainer.train_steps(1))
    many = counted(traffic, lambda: trainer.train_steps(7))  # across two epoch boundaries
    assert one == many
    assert "device allocation" not in one and "implicit copy" not in one
    # The status word and the touched rows of the epoch statistics come back; the
    # parameters are backed up on the device. Nothing goes up.
    assert one == {"device to host": 2, "device to device": 3}


def test_shuffling_sends_one_permutation_per_epoch(monkeypatch, traffic):
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", False)  # one launch per step (see
    # test_fused_multistep.py for one copy per launch of many steps)
    rng = np.random.default_rng(1)
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "sigmoid")], seed=0, device="cuda")
    X, T = model.as_arrays(rng.standard_normal((6, 2)), rng.integers(0, 2, 6))
    trainer = start_run(model, X, T, 2, True, 3)
    steps = counted(traffic, lambda: trainer.train_steps(9))  # 3 epochs of 3 steps
    assert steps["host to device"] == 3 and "device allocation" not in steps


@pytest.mark.parametrize("steps_per_launch", [False, "auto"])
def test_fit_allocations_do_not_grow_with_epochs(monkeypatch, traffic, steps_per_launch):
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", steps_per_launch)
    rng = np.random.default_rng(2)
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "identity")], seed=0, device="cuda")
    X, y = rng.standard_normal((8, 2)), rng.standard_normal(8)
    model.fit(X, y, epochs=3, batch_size=4, progress=False)  # sizes the workspace
    short = counted(traffic, lambda: model.fit(X, y, epochs=1, batch_size=4, progress=False))
    long = counted(traffic, lambda: model.fit(X, y, epochs=3, batch_size=4, progress=False))
    for kind in ("device allocation", "pinned host allocation", "implicit copy"):
        assert short[kind] == long[kind]
    # per fit: X, the targets, the permutation (and, for many steps per launch with
    # shuffling, the room for the permutations of the epochs a launch touches)
    assert short["device allocation"] == (3 if steps_per_launch is False else 4)
