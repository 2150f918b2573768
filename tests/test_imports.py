"""Imports cost what they use: `import fastmlp` and `import fastmlp.sklearn` leave the
datasets' download machinery, plotting, progress bars, scikit-learn's model selection and
metrics and scipy's subpackages unloaded until a call needs them (checked in a fresh
interpreter, where nothing else has imported them)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# numba imports the top-level scipy package itself (to check its version): only its
# subpackages can wait.
NEVER_AT_IMPORT = ["fastmlp.datasets", "fastmlp.fit.plot", "urllib.request", "http.client",
                   "matplotlib", "tqdm", "sklearn.model_selection", "sklearn.neural_network",
                   "sklearn.metrics", "sklearn.preprocessing"]
NOT_FOR_FASTMLP = ["sklearn", "scipy.optimize", "scipy.sparse", "scipy.stats"]


def loaded_after(statement):
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_fastmlp_loads_only_what_a_fit_uses():
    modules = loaded_after("import fastmlp")
    assert "fastmlp.model" in modules  # the check sees what was imported
    assert not modules & set(NEVER_AT_IMPORT + NOT_FOR_FASTMLP), sorted(
        modules & set(NEVER_AT_IMPORT + NOT_FOR_FASTMLP))


def test_import_fastmlp_sklearn_leaves_the_rest_of_scikit_learn_alone():
    modules = loaded_after("import fastmlp.sklearn")
    assert "sklearn.base" in modules
    assert not modules & set(NEVER_AT_IMPORT), sorted(modules & set(NEVER_AT_IMPORT))


def test_the_lazy_names_load_when_used():
    modules = loaded_after("import fastmlp\nassert callable(fastmlp.datasets.load_mnist)\n"
                           "from fastmlp import datasets\nassert datasets is fastmlp.datasets")
    assert "fastmlp.datasets" in modules
