"""time_train_steps, which `fastmlp bench --device cuda` calls, on the simulator."""
import pytest

from fastmlp.bench.cuda import time_train_steps
from fastmlp.bench.workloads import WORKLOADS


def test_time_train_steps_on_xor():
    result = time_train_steps("xor", steps=3)
    assert result["workload"] == "xor" and result["device"] == "cuda"
    assert result["steps"] == 3 and result["seconds"] > 0
    assert result["path"] == "fused-steps"  # xor fits one block: many steps per launch
    assert result["launches_per_step"] == pytest.approx(1 / 3)  # the 3 steps in one launch
    assert result["samples_per_s"] == pytest.approx(4 * result["steps_per_s"])
    flops = WORKLOADS["xor"].flops_per_step()
    assert result["gflops"] == pytest.approx(flops * result["steps_per_s"] / 1e9)


def test_fused_path_with_one_launch_per_step(monkeypatch):
    from fastmlp import config
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", False)
    result = time_train_steps(WORKLOADS["xor"], steps=2)
    assert result["path"] == "fused" and result["launches_per_step"] == 1


def test_tiled_path_counts_its_launches(monkeypatch):
    from fastmlp import config
    monkeypatch.setattr(config, "CUDA_FUSED", False)
    result = time_train_steps(WORKLOADS["xor"], steps=1)
    assert result["path"] == "tiled" and result["launches_per_step"] == 2 * 2 + 3


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_bad_step_counts(steps):
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        time_train_steps("xor", steps=steps)
