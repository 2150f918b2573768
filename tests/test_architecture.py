"""The package's shape: imports flow one way, MLP's privates stay in model.py, and every
dispatch on a code fails loudly on a code it has no branch for."""
import ast
import math
import os
import re

import numpy as np
import pytest

import fastmlp
from fastmlp.core import activations, jitcache, losses, optimizers

PACKAGE = os.path.dirname(os.path.abspath(fastmlp.__file__))


def package_modules():
    """{dotted name: path} of every module of the package."""
    found = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), os.path.dirname(PACKAGE))
                dotted = rel[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = os.path.join(root, name)
    return found


def imports_of(module, path):
    """The package modules `module` imports, at module level or inside functions."""
    tree = ast.parse(open(path).read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import io` imports the submodule, not the package's __init__ again
            names = ([target] if node.module else []) + [f"{target}.{a.name}"
                                                          for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n.split(".")[0] == "fastmlp")
    return out


@pytest.fixture(scope="module")
def graph():
    modules = package_modules()
    return {m: {i for i in imports_of(m, p) if i in modules and i != m}
            for m, p in modules.items()}


def test_the_root_keeps_the_facade_and_a_few_edges():
    """Rooms by role: at most 12 modules directly in fastmlp/, the rest in folders."""
    root = [name for name in os.listdir(PACKAGE) if name.endswith(".py")]
    assert len(root) <= 12, sorted(root)


def test_no_module_is_over_400_lines():
    long = {module: n for module, path in package_modules().items()
            if (n := sum(1 for _ in open(path))) > 400}
    assert not long, f"split these modules: {long}"


def test_the_twins_never_import_each_other(graph):
    for module, targets in graph.items():
        for twin, other in (("fastmlp.cpu", "fastmlp.cuda"), ("fastmlp.cuda", "fastmlp.cpu")):
            if module.startswith(twin):
                crossing = [t for t in targets if t.startswith(other)]
                assert not crossing, f"{module} imports {crossing} from the other twin"


def test_training_imports_neither_twin(graph):
    assert not [t for t in graph["fastmlp.fit.loop"]
                if t.startswith(("fastmlp.cpu", "fastmlp.cuda"))]


# Modules above both twins: core/ (names, codes, layouts, the flat buffers and the
# runtime plumbing the kernels read), config, the input checks, History and its plot, and
# files.py (the atomic writer). They import no twin, and nothing that drives one.
EDGE_MODULES = ("fastmlp.config", "fastmlp.inputs.validation", "fastmlp.inputs.numbers",
                "fastmlp.fit.history",
                "fastmlp.fit.plot", "fastmlp.files")


def is_edge(module):
    return module in ("fastmlp.core", *EDGE_MODULES) or module.startswith("fastmlp.core.")


def test_edge_modules_import_no_twin_and_no_driver(graph):
    edge = [m for m in graph if is_edge(m)]
    assert len(edge) > 10  # the scan sees core/
    for module in edge:
        for target in graph[module]:
            assert is_edge(target), f"{module} imports {target}"


def test_import_graph_has_no_cycle(graph):
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def mlp_private_members():
    tree = ast.parse(open(os.path.join(PACKAGE, "model.py")).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "self" and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            names.add(node.attr)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("_") \
                and not node.name.startswith("__"):
            names.add(node.name)
    return names


def test_no_module_outside_model_uses_a_private_member_of_mlp():
    private = mlp_private_members()
    assert {"_backend", "_loss_code"} <= private  # the scan sees them
    pattern = re.compile(r"\.(" + "|".join(sorted(private)) + r")\b")
    offenders = []
    for module, path in package_modules().items():
        if module == "fastmlp.model":
            continue
        for number, line in enumerate(open(path), 1):
            if pattern.search(line.split("#")[0]):
                offenders.append(f"{module}:{number}: {line.strip()}")
    # A backend's own members may share a name with one of MLP's (say `_rows`): only
    # accesses through something that is a model count.
    offenders = [o for o in offenders if re.search(r"\b(model|self\.model|ref|m)\._", o)]
    assert not offenders, "\n".join(offenders)


# -- codes without a kernel branch ------------------------------------------------------
X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
Y = np.array([1.0, 1.0, 0.0, 0.0])


class Dummy(optimizers.Optimizer):
    """An optimizer whose code no kernel has a branch for."""
    code = max(optimizers.CODES) + 1
    name = "dummy"
    variant = "dummy"
    _fields = ("lr",)

    def __init__(self):
        self.lr = 0.1


@pytest.mark.parametrize("generated", [False, True])
def test_an_optimizer_without_a_kernel_branch_is_refused(generated, monkeypatch):
    from fastmlp import config
    monkeypatch.setattr(config, "SPECIALIZE", generated)
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "identity")], optimizer=Dummy(), seed=0)
    where = "codegen" if generated else "unknown optimizer code"
    with pytest.raises(ValueError, match=where):
        model.fit(X, Y, epochs=2, batch_size=4, progress=False)


def dummy_activation(monkeypatch, **fields):
    """Register a record "dummy" (a code no kernel has a branch for; `fields` override the
    record's defaults, a complete relu-like record) and return its code."""
    code = max(activations.ACTIVATIONS.values()) + 1
    record = activations.Activation("dummy", code, "Relu", (), "ReLU", (), "he",
                                    sklearn_name="dummy")._replace(**fields)
    monkeypatch.setitem(activations.REGISTRY, "dummy", record)
    return code


@pytest.mark.parametrize("generated", [False, True])
def test_an_activation_without_a_kernel_branch_is_refused(generated, monkeypatch):
    from fastmlp import config
    monkeypatch.setattr(config, "SPECIALIZE", generated)
    dummy_activation(monkeypatch)
    model = fastmlp.MLP(2, [(3, "dummy"), (1, "identity")], seed=0)
    with pytest.raises(ValueError, match="activation code"):
        model.fit(X, Y, epochs=2, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="unknown activation code"):
        model.forward(X)


@pytest.mark.parametrize("generated", [False, True])
def test_a_loss_without_a_kernel_branch_is_refused(generated, monkeypatch):
    from fastmlp import config
    monkeypatch.setattr(config, "SPECIALIZE", generated)
    code = max(losses.LOSSES.values()) + 1
    monkeypatch.setitem(losses.LOSSES, "dummy", code)
    monkeypatch.setitem(losses.VALID_OUTPUTS, "dummy", frozenset({"identity"}))
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "identity")], loss="dummy", seed=0)
    with pytest.raises(ValueError, match="loss code"):
        model.fit(X, Y, epochs=2, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="unknown loss code"):
        model.loss(X, Y)


def test_cuda_refuses_codes_its_kernels_lack(monkeypatch):
    pytest.importorskip("numba.cuda")
    from fastmlp.cuda import backend
    dummy_activation(monkeypatch)
    spec = fastmlp.MLP(2, [(3, "dummy"), (1, "identity")]).spec
    with pytest.raises(ValueError, match="CUDA kernels have no branch for activation"):
        backend.check_codes(spec)
    ok = fastmlp.MLP(2, [(3, "tanh"), (1, "identity")]).spec
    with pytest.raises(ValueError, match="CUDA kernels have no branch for loss"):
        backend.check_codes(ok, loss=max(losses.LOSSES.values()) + 1)
    with pytest.raises(ValueError, match="CUDA kernels have no update for optimizer Dummy"):
        backend.check_codes(ok, loss=losses.MSE, optimizer=Dummy())


def test_every_registered_name_has_a_branch_everywhere():
    """The registries list what exists; every twin handles all of it (lists derived from
    the registries, not copied)."""
    from fastmlp.cpu import codegen
    pytest.importorskip("numba.cuda")
    from fastmlp.cuda import elementwise, loss as cuda_loss, optim as cuda_optim
    assert set(activations.ACTIVATIONS.values()) == set(elementwise.HANDLED_ACTIVATIONS)
    assert set(losses.LOSSES.values()) == set(cuda_loss.HANDLED_LOSSES)
    assert set(optimizers.CODES) == set(cuda_optim.HANDLED_OPTIMIZERS)
    assert {cls().variant for cls in optimizers.OPTIMIZERS.values()} <= set(codegen.VARIANTS)
    momentum = optimizers.SGD(momentum=0.9)
    assert {momentum.variant, optimizers.SGD(momentum=0.9, nesterov=True).variant} \
        <= set(codegen.VARIANTS)


# -- the disk cache sees edits in every kernel source --------------------------------------
def test_cached_kernels_are_stamped_with_every_kernel_source():
    from fastmlp.cpu import steps
    locator = steps.train_steps._cache._impl.locator
    assert getattr(locator, "fastmlp_locator", False)
    assert locator.get_source_stamp()[1] == jitcache.source_digest()
    covered = {os.path.relpath(p, PACKAGE) for p in jitcache._files(PACKAGE)}
    assert {"config.py", os.path.join("core", "activations.py"),
            os.path.join("cpu", "dense.py")} <= covered


def test_editing_config_changes_the_stamp(tmp_path):
    import shutil
    copy = tmp_path / "fastmlp"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = jitcache.source_digest(str(copy))
    with open(copy / "config.py", "a") as f:
        f.write("\nBLAS_MIN_WIDTH = 9\n")
    jitcache.source_digest.cache_clear()
    assert jitcache.source_digest(str(copy)) != before


# -- adding an activation ----------------------------------------------------------------
# An activation is one record in core/activations.REGISTRY plus its kernel branches
# (docs/architecture.md, "Adding things"). A record whose branches were not written fails
# at every kernel site with a message naming the code; each edge reads the record, and a
# record without the field an edge needs is refused with a message naming the field.
HIDDEN_DUMMY = [(3, "dummy"), (1, "identity")]


@pytest.mark.parametrize("generated", [False, True])
def test_a_new_activation_fails_every_cpu_kernel_site_that_lacks_its_branch(generated,
                                                                          monkeypatch):
    from fastmlp import config
    from fastmlp.core import scalars
    from fastmlp.cpu import codegen
    monkeypatch.setattr(config, "SPECIALIZE", generated)
    code = dummy_activation(monkeypatch)
    model = fastmlp.MLP(2, HIDDEN_DUMMY, seed=0)
    with pytest.raises(ValueError, match="activation code"):  # generic or generated kernel
        model.fit(X, Y, epochs=2, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="cpu/dense.activation_forward: unknown activation"):
        model.forward(X)
    with pytest.raises(ValueError, match=f"codegen: no branch for activation code {code}"):
        (codegen.generate_rows_source if generated else codegen.generate_columns_source)(
            model.spec, losses.MSE, "sgd")
    with pytest.raises(ValueError, match="core/scalars.activate: unknown activation code"):
        scalars.activate(0.5, code)
    with pytest.raises(ValueError, match="core/scalars.activation_grad: unknown activation"):
        scalars.activation_grad(1.0, 0.5, code)


def test_a_new_activation_fails_the_cuda_kernels_and_the_test_oracle(monkeypatch):
    from tests import reference
    dummy_activation(monkeypatch)
    with pytest.raises(ValueError, match="tests/reference.py has no numpy definition"):
        reference.activation(X, "dummy")
    with pytest.raises(ValueError, match="tests/reference.py has no numpy derivative"):
        reference.activation_derivative(X, "dummy")
    pytest.importorskip("numba.cuda")
    from fastmlp.cuda import backend
    with pytest.raises(ValueError, match="CUDA kernels have no branch for activation"):
        backend.check_codes(fastmlp.MLP(2, HIDDEN_DUMMY).spec)


def test_a_new_activation_record_is_read_by_export_init_losses_and_spec(monkeypatch):
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    from fastmlp import export
    dummy_activation(monkeypatch, onnx_op="Elu", onnx_attributes=(("alpha", 0.5),),
                     torch_module="ELU", torch_arguments=(("alpha", 0.5),))
    model = fastmlp.MLP(2, HIDDEN_DUMMY, seed=0)
    graph = export.onnx_graph(model).graph
    assert [n.op_type for n in graph.node] == ["Gemm", "Elu", "Gemm", "Identity"]
    assert graph.node[1].attribute[0].f == 0.5
    module = export.to_torch(model)
    assert isinstance(module[1], torch.nn.ELU) and module[1].alpha == 0.5
    # init="auto" takes the record's family: He-uniform, bound sqrt(6 / n_in)
    W = model.get_weights()[0][0]
    assert np.abs(W).max() <= np.sqrt(6.0 / 2) and np.abs(W).max() > np.sqrt(6.0 / 5)
    # losses.VALID_OUTPUTS: mse takes any registered output; the others name theirs
    assert losses.loss_code("mse", "dummy") == losses.MSE
    with pytest.raises(ValueError, match="needs a sigmoid output layer"):
        losses.loss_code("binary_cross_entropy", "dummy")
    # the record's flags reach the spec and the model
    dummy_activation(monkeypatch, output_only=True, classifier_output=True)
    with pytest.raises(ValueError, match="dummy"):
        fastmlp.MLP(2, HIDDEN_DUMMY)
    assert fastmlp.MLP(2, [(3, "relu"), (2, "dummy")]).is_classifier


@pytest.mark.parametrize("field,target", [("onnx_op", "ONNX"), ("torch_module", "PyTorch")])
def test_a_new_activation_record_without_an_operator_is_refused_by_export(field, target,
                                                                          monkeypatch):
    from fastmlp import export
    pytest.importorskip("onnx" if target == "ONNX" else "torch")
    dummy_activation(monkeypatch, **{field: None})
    model = fastmlp.MLP(2, HIDDEN_DUMMY, seed=0)
    write = export.onnx_graph if target == "ONNX" else export.to_torch
    with pytest.raises(ValueError, match=f"layer 0 uses 'dummy', which {target} cannot "
                                         f"represent.*has no {field}"):
        write(model)


def test_a_new_activation_record_without_an_init_family_is_refused(monkeypatch):
    dummy_activation(monkeypatch, init=None)
    with pytest.raises(ValueError, match="activation 'dummy' has no init"):
        fastmlp.MLP(2, HIDDEN_DUMMY)
    dummy_activation(monkeypatch, init="lecun")
    with pytest.raises(ValueError, match="init family is 'lecun'"):
        fastmlp.MLP(2, HIDDEN_DUMMY)
    fastmlp.MLP(2, HIDDEN_DUMMY, init="pytorch")  # an explicit scheme needs no family


def test_a_new_activation_reaches_the_estimators_through_its_sklearn_name(monkeypatch):
    pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPRegressor
    dummy_activation(monkeypatch, sklearn_name="dummy_sk")
    estimator = MLPRegressor(hidden_layer_sizes=(3,), activation="dummy_sk", max_iter=2,
                             random_state=0)
    with pytest.raises(ValueError, match="activation code"):  # built, then the kernels refuse
        estimator.fit(X, Y)
    dummy_activation(monkeypatch, sklearn_name=None)
    with pytest.raises(ValueError, match="'activation' parameter"):
        MLPRegressor(activation="dummy_sk").fit(X, Y)


# -- one home per feature --------------------------------------------------------------------
from fastmlp import files  # noqa: E402
from fastmlp.core import schedules  # noqa: E402
from fastmlp.inputs import labels, numbers, split  # noqa: E402


def _calls_os_replace(tree):
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "replace" and isinstance(node.func.value, ast.Name)
               and node.func.value.id == "os" for node in ast.walk(tree))


def test_exactly_one_module_renames_files_into_place():
    callers = [m for m, path in package_modules().items()
               if _calls_os_replace(ast.parse(open(path).read()))]
    assert callers == ["fastmlp.files"], \
        f"write files through files.atomic_write, not os.replace: {callers}"


def test_the_estimators_never_set_a_learning_rate():
    """The schedules own the rate; the estimators only pick one."""
    found = []
    for module, path in package_modules().items():
        if not module.startswith("fastmlp.sklearn"):
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            found += [f"{module}:{node.lineno}" for t in targets
                      if isinstance(t, ast.Attribute) and t.attr == "lr"]
    assert not found, f"assignments to .lr in fastmlp.sklearn: {found}"


@pytest.mark.parametrize("call,error,match", [
    (lambda: numbers.check_real(True, "lr", 0.0), TypeError, "lr must be a number"),
    (lambda: numbers.check_real("1", "lr", 0.0), TypeError, "got str '1'"),
    (lambda: numbers.check_real(math.nan, "lr", 0.0), ValueError, "finite number >= 0"),
    (lambda: numbers.check_real(0.0, "f", 0.0, 1.0, low_open=True), ValueError,
     "f must be a finite number > 0 and <= 1; got 0.0"),
    (lambda: numbers.check_real(-1, "lr", 0.0, interval=True), ValueError,
     r"lr must be in \[0.0, inf\]; got -1.0"),
    (lambda: numbers.check_real(math.inf, "m", 0.0), ValueError, "finite"),
    (lambda: numbers.check_int(2.0, "epochs", 0), TypeError, "epochs must be an integer"),
    (lambda: numbers.check_int(-1, "epochs", 0), ValueError, "epochs must be >= 0"),
    (lambda: numbers.check_int(5, "k", 0, 4), ValueError, "k must be <= 4"),
    (lambda: numbers.check_size(np.float64(3), "n"), TypeError, "positive integer"),
    (lambda: numbers.check_size(0, "n"), ValueError, "n must be at least 1"),
    (lambda: numbers.check_whole(1.5, "s", 1.0), ValueError, "whole number"),
    (lambda: numbers.check_bool(1, "shuffle"), TypeError, "shuffle must be True or False"),
])
def test_the_number_checks_refuse_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_number_checks_return_plain_python_values():
    assert numbers.check_real(np.float32(0.5), "x") == 0.5
    assert type(numbers.check_real(np.float32(0.5), "x")) is float
    assert numbers.check_real(math.inf, "x", 0.0, allow_inf=True) == math.inf
    assert type(numbers.check_int(np.int64(3), "x", 0)) is int
    assert numbers.check_whole(3.0, "x") == 3 and type(numbers.check_whole(3.0, "x")) is int
    assert numbers.check_bool(np.bool_(True), "x") is True


@pytest.mark.parametrize("test_size", [0.25, 7, 0.5])
@pytest.mark.parametrize("stratify", ["none", "labels", "rows"])
def test_split_rows_draws_scikit_learns_rows(test_size, stratify):
    from sklearn.model_selection import train_test_split
    y = np.arange(40) % 3
    strata = {"none": None, "labels": y, "rows": np.eye(3, dtype=bool)[y]}[stratify]
    ours_state, theirs_state = np.random.RandomState(4), np.random.RandomState(4)
    for _ in range(2):  # a RandomState's draws advance alike
        ours = split.split_rows(40, test_size, ours_state, strata)
        theirs = train_test_split(np.arange(40), test_size=test_size,
                                  random_state=theirs_state, stratify=strata)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_split_rows_passes_scikit_learns_refusal_on():
    with pytest.raises(ValueError, match="test_size"):
        split.split_rows(10, 10, 0)
    with pytest.raises(ValueError, match="least populated class"):
        split.split_rows(10, 0.3, 0, np.array([0] * 9 + [1]))


def test_labels_encode_and_look_up_any_labels():
    classes, codes = labels.encode(np.array(["b", "a", "c", "a"]))
    assert classes.tolist() == ["a", "b", "c"] and codes.tolist() == [1, 0, 2, 0]
    assert labels.codes_for(classes, ["c", "a"], "test").tolist() == [2, 0]
    with pytest.raises(ValueError, match="label\\(s\\) 'z'"):
        labels.codes_for(classes, ["z"], "test")
    classes, codes = labels.encode(np.array([3, "3", 1], dtype=object))  # compared as text
    assert classes.tolist() == ["1", "3"] and codes.tolist() == [1, 1, 0]
    assert labels.plain(np.int64(2)) == 2 and type(labels.plain(np.int64(2))) is int
    # MLP.fit's reading of the same labels: the same order
    got, index = labels.encode_labels(np.array(["b", "a", "c"]), None, 3, "softmax")
    assert got.tolist() == ["a", "b", "c"] and index.tolist() == [1, 0, 2]


def test_atomic_write_keeps_the_old_file_and_its_mode_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    files.atomic_write(path, lambda f: f.write("old"), text=True)
    os.chmod(path, 0o640)

    def fail(f):
        f.write("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        files.atomic_write(path, fail, text=True)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]
    files.atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and (os.stat(path).st_mode & 0o777) == 0o640


def test_a_callback_monitored_plateau_is_left_to_the_callback():
    rule = schedules.ReduceOnPlateau(patience=0, monitor="callback")
    assert not rule.needs_epoch_end and schedules.ReduceOnPlateau().needs_epoch_end
    assert schedules.from_config(rule.config()) == rule
    rule.start(0.5)
    assert rule.epoch_end(1.0) is False and rule.epoch_end(1.0) is False
    assert rule.rate == 0.1 and rule.best == 1.0
    rule.restart_rate()  # a new optimizer: the rate starts over, the record does not
    rule.start(0.5)
    assert rule.rate == 0.5 and rule.best == 1.0
    # min_lr=inf: the first plateau stops (scikit-learn's tol / n_iter_no_change rule)
    stop = schedules.ReduceOnPlateau(patience=1, min_lr=math.inf, monitor="callback")
    assert [stop.epoch_end(v) for v in (1.0, 1.0, 1.0)] == [False, False, True]
    with pytest.raises(ValueError, match="monitor"):
        schedules.ReduceOnPlateau(monitor="val")
