"""Choosing the device: clear errors for bad devices and missing CUDA support; importing
fastmlp never touches numba.cuda."""
import os
import subprocess
import sys

import pytest

import fastmlp
from fastmlp.cuda import device

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code, env_drop=()):
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:0", None, 0])
def test_unknown_device_is_a_value_error(bad):
    with pytest.raises(ValueError, match="unknown device.*cpu, cuda"):
        fastmlp.MLP(2, [(1, "sigmoid")], device=bad)
    model = fastmlp.MLP(2, [(1, "sigmoid")])
    with pytest.raises(ValueError, match="unknown device"):
        model.to(bad)
    assert model.device == "cpu"


def test_without_numba_cuda_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(device.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"numba-cuda.*pip install 'fastmlp\[cuda\]'"):
        fastmlp.MLP(2, [(1, "sigmoid")], device="cuda")
    model = fastmlp.MLP(2, [(1, "sigmoid")])
    with pytest.raises(RuntimeError, match="numba-cuda"):
        model.to("cuda")
    assert model.device == "cpu" and not hasattr(model.backend, "dws")


def test_numba_builtin_cuda_target_is_refused(monkeypatch):
    from numba import cuda
    monkeypatch.setattr(cuda, "implementation", "Built-in")
    with pytest.raises(RuntimeError, match="deprecated built-in target"):
        device.cuda_module()


def test_import_fastmlp_does_not_import_numba_cuda():
    result = run_python("import sys, numpy as np, fastmlp\n"
                        "m = fastmlp.MLP(2, [(3, 'relu'), (1, 'sigmoid')], seed=0)\n"
                        "m.fit(np.eye(2), [0, 1], epochs=1, progress=False)\n"
                        "print(sorted(k for k in sys.modules\n"
                        "             if k.startswith(('numba.cuda', 'numba_cuda', 'fastmlp.cuda'))))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_gpu_or_simulator_the_error_says_what_to_set():
    result = run_python("import fastmlp\n"
                        "fastmlp.MLP(2, [(1, 'sigmoid')], device='cuda')\n"
                        "print('made a cuda model')", env_drop=("NUMBA_ENABLE_CUDASIM",))
    if device.gpu_present():  # then the model is made on the real GPU
        assert result.returncode == 0 and "made a cuda model" in result.stdout
    else:
        assert result.returncode != 0
        assert "RuntimeError" in result.stderr and "no usable CUDA GPU" in result.stderr
        assert "NUMBA_ENABLE_CUDASIM=1" in result.stderr
