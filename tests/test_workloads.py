import numpy as np
import pytest

from fastmlp.bench.workloads import WORKLOADS


def test_the_workloads_of_the_design_and_fashion():
    assert list(WORKLOADS) == ["xor", "x2", "mnist-small", "mnist-wide", "fashion"]
    # the figure: about 818 kFLOP a sample
    assert WORKLOADS["fashion"].flops_per_step() == 128 * 2 * (2 * (784 * 256 + 256 * 10)
                                                               + 256 * 10)
    assert WORKLOADS["mnist-wide"].flops_per_step() == \
        2 * 256 * (2 * (784 * 1024 + 1024 * 1024 + 1024 * 10) + (1024 * 1024 + 1024 * 10))


@pytest.mark.parametrize("name", ["xor", "x2", "mnist-small", "fashion"])
def test_workloads_build_and_train(name):
    w = WORKLOADS[name]
    model = w.build(seed=0)
    X, y = w.make_data(n_samples=2 * w.batch_size)
    history = model.fit(X, y, epochs=2, batch_size=w.batch_size, progress=False)
    assert np.isfinite(history.loss).all()
    assert model.spec.flops_per_step(w.batch_size) == w.flops_per_step()
