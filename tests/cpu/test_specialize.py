"""Generated kernels (cpu/specialize.py) against the generic train_steps they replace.

Both run the same steps from the same weights, data and shuffle seed; every buffer and
statistic they leave must agree to a few ulps (float64: 1e-12 relative; float32: 2e-5).
"""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import config
from fastmlp.cpu import codegen, specialize
from fastmlp.cpu import steps as cpu_steps
from tests.runs import recorded_runs, start as start_run

TOL = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=2e-5, atol=2e-6)}

# (n_inputs, layers, loss or None for the canonical one): every trainable activation in a
# hidden layer, and every output/loss pair, canonical or not.
ARCHITECTURES = [
    (2, [(2, "relu"), (1, "sigmoid")], None),
    (1, [(8, "relu"), (8, "relu"), (1, "identity")], None),
    (3, [(5, "tanh"), (4, "leaky_relu"), (3, "softmax")], None),
    (4, [(6, "sigmoid"), (2, "sigmoid")], "mse"),
    (3, [(4, "leaky_relu"), (3, "softmax")], "mse"),
    (2, [(3, "identity"), (2, "tanh")], "mse"),
    (3, [(3, "tanh"), (2, "relu")], "mse"),
    (5, [(1, "sigmoid"), (4, "leaky_relu")], "mse"),
    (2, [(4, "relu"), (3, "sigmoid")], "binary_cross_entropy"),
]
OPTIMIZERS = {
    "sgd": lambda: fastmlp.SGD(lr=0.05),
    "momentum": lambda: fastmlp.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: fastmlp.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: fastmlp.Adam(lr=0.01),
    "adamw": lambda: fastmlp.AdamW(lr=0.01, weight_decay=0.1),
}


def make(n_inputs, layers, loss, optimizer, dtype, l2, n=37, seed=0):
    rng = np.random.default_rng(seed)
    model = fastmlp.MLP(n_inputs, layers, loss=loss, optimizer=OPTIMIZERS[optimizer](),
                        dtype=dtype, seed=seed, l2=l2)
    X = rng.standard_normal((n, n_inputs))
    k, out = layers[-1]
    if out == "softmax" and model.loss_name == "cross_entropy":
        y = rng.integers(0, k, n)
    elif out == "sigmoid" and model.loss_name == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, k)) if k > 1 else rng.integers(0, 2, n)
    else:
        y = rng.standard_normal((n, k))
    return model, X, y


def fitted_kernel(model, X, y, batch_size):
    """The generated kernel a fit of model on (X, y) would use, or None for the generic."""
    return start_run(model, *model.as_arrays(X, y), batch_size, True, 1).kernel


def run_kernel(model, X, y, batch_size, steps, kernel, shuffle=True):
    """Run `steps` steps with the given kernel ("generic" or "specialized") on a copy of
    model's buffers; returns everything the call leaves behind."""
    Xc, T = model.as_arrays(X, y)
    epochs = steps + 2
    backend = model.backend
    run = start_run(model, Xc, T, batch_size, shuffle, epochs)
    if kernel == "generic":
        run.kernel, run.extra = None, ()
    else:
        assert run.kernel is not None
    saved = backend.get_state()
    status, done = run.train_steps(steps)
    run.close()
    after = backend.get_state()
    out = {"status": status, "done": done, "cursor": np.array(run.cursor()),
           "perm": after.pop("perm"), "epoch_loss": run.epoch_loss.copy(),
           "epoch_grad_norm": run.epoch_grad_norm.copy(), **after}
    backend.set_state(saved)  # the next run starts from the same state and permutation
    return out


def assert_same(a, b, dtype):
    for key in a:
        if key in ("status", "done"):
            assert a[key] == b[key], key
        elif np.issubdtype(np.asarray(a[key]).dtype, np.integer):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], err_msg=key, **TOL[dtype])


# Each architecture with one optimizer (every optimizer once or twice), and the bench's xor
# and x2 in float32: a generated kernel takes 1 s (xor) to 6 s (x2) to compile, so not the
# full grid. The update code is the same in both layouts.
CASES = [(*arch, optimizer, "float64") for arch, optimizer in
         zip(ARCHITECTURES, ["sgd", "adam", "momentum", "nesterov", "adamw"] * 2)]
CASES += [(2, [(2, "relu"), (1, "sigmoid")], None, "sgd", "float32"),
          (1, [(8, "relu"), (8, "relu"), (1, "identity")], None, "adam", "float32"),
          (3, [(5, "tanh"), (4, "leaky_relu"), (3, "softmax")], None, "momentum", "float32")]


@pytest.mark.parametrize("layout", [specialize.ROWS, specialize.COLUMNS])
@pytest.mark.parametrize("n_inputs,layers,loss,optimizer,dtype", CASES)
def test_generated_kernel_matches_the_generic_one(n_inputs, layers, loss, optimizer, dtype,
                                                  layout):
    model, X, y = make(n_inputs, layers, loss, optimizer, dtype, l2=0.01)
    # 37 rows in batches of 3 (rows layout) or 16 (columns): epochs of 13 or 3 batches, the
    # last one short; 30 or 12 steps cross epoch boundaries and their reshuffles.
    batch, steps = (3, 30) if layout == specialize.ROWS else (16, 12)
    assert specialize.layout_for(batch) == layout
    generic = run_kernel(model, X, y, batch, steps, "generic")
    special = run_kernel(model, X, y, batch, steps, "specialized")
    assert generic["status"] == cpu_steps.OK and generic["done"] == steps
    assert_same(generic, special, dtype)
    assert not np.array_equal(special["params"], model.backend.get_params())  # it trained


def test_generated_kernel_without_shuffle_and_l2():
    dtype = "float32"
    model, X, y = make(1, [(8, "relu"), (8, "relu"), (1, "identity")], None, "adam", dtype,
                       l2=0.0)
    generic = run_kernel(model, X, y, 37, 5, "generic", shuffle=False)
    special = run_kernel(model, X, y, 37, 5, "specialized", shuffle=False)
    assert_same(generic, special, dtype)


@pytest.mark.parametrize("what", ["diverges", "overflowing_input"])
def test_generated_kernel_stops_where_the_generic_one_does(what):
    model, X, y = make(2, [(4, "relu"), (1, "identity")], None, "sgd", "float32", l2=0.0)
    if what == "diverges":  # a huge learning rate: the loss overflows after a few updates
        model.optimizer = fastmlp.SGD(lr=1e6)
        y = y * 1e15
    else:
        X[30, :] = 3e38  # an infinite loss in the batch that holds row 30
    generic = run_kernel(model, X, y, 8, 50, "generic")
    special = run_kernel(model, X, y, 8, 50, "specialized")
    assert generic["status"] == cpu_steps.NONFINITE_LOSS and 0 < generic["done"] < 50
    assert_same(generic, special, "float32")


def test_fit_uses_a_generated_kernel_only_for_small_networks():
    small = fastmlp.MLP(2, [(2, "relu"), (1, "sigmoid")])
    X, y = np.zeros((4, 2)), np.zeros(4)
    assert fitted_kernel(small, X, y, 4) is not None
    big = fastmlp.MLP(20, [(20, "relu"), (1, "sigmoid")])
    assert big.spec.n_weights > config.SPECIALIZE_MAX_WEIGHTS
    X = np.zeros((4, 20))
    assert fitted_kernel(big, X, y, 4) is None


def test_generated_source_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(specialize, "_loaded", {})
    model = fastmlp.MLP(3, [(2, "tanh"), (2, "softmax")])
    first = specialize.kernel(model.spec, model.loss_code, codegen.ADAM_VARIANT)
    files = sorted(p.name for p in (tmp_path / "kernels").glob("*.py"))
    assert len(files) == 1
    assert specialize.kernel(model.spec, model.loss_code, codegen.ADAM_VARIANT) is first
    monkeypatch.setattr(specialize, "_loaded", {})  # as a new process would
    specialize.kernel(model.spec, model.loss_code, codegen.ADAM_VARIANT)
    assert sorted(p.name for p in (tmp_path / "kernels").glob("*.py")) == files
    text = (tmp_path / "kernels" / files[0]).read_text()
    assert text == codegen.generate_rows_source(model.spec, model.loss_code,
                                                   codegen.ADAM_VARIANT)
    assert "3 -> (2, tanh) -> (2, softmax)" in text


def test_unwritable_cache_falls_back_to_the_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(specialize.tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(specialize, "_loaded", {})
    write = specialize._write

    def read_only_cache(directory, name, source):
        if directory == specialize.cache_dir():
            raise PermissionError(f"{directory} is read-only")
        return write(directory, name, source)

    monkeypatch.setattr(specialize, "_write", read_only_cache)
    os.makedirs(tmp_path / "tmp")
    model = fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")])
    assert specialize.kernel(model.spec, model.loss_code, codegen.SGD_VARIANT) is not None
    assert not (tmp_path / "cache").exists()
    assert len(list((tmp_path / "tmp").glob("fastmlp-*/fastmlp_kernel_*.py"))) == 1


def test_without_a_writable_directory_fit_uses_the_generic_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(specialize, "_loaded", {})
    monkeypatch.setattr(specialize, "_write", lambda *a: (_ for _ in ()).throw(OSError("ro")))
    model = fastmlp.MLP(2, [(3, "relu"), (1, "sigmoid")], seed=0)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y = np.array([0, 1, 1, 0])
    assert fitted_kernel(model, X, y, 4) is None
    h = model.fit(X, y, epochs=3, batch_size=4, progress=False)
    assert h.epochs == 3 and np.isfinite(h.loss).all()


@pytest.mark.parametrize("batch_size", [3, 16])
def test_generated_kernels_allocate_nothing_per_step(batch_size):
    from fastmlp.bench.diagnostics import allocations_per_step
    model, X, y = make(3, [(5, "tanh"), (4, "leaky_relu"), (3, "softmax")], None, "adam",
                       "float32", l2=0.01, n=40)
    assert fitted_kernel(model, X, y, batch_size) is not None
    expected = (specialize.ROWS if batch_size < config.SPECIALIZE_COLUMNS_MIN_BATCH
                else specialize.COLUMNS)
    assert specialize.layout_for(batch_size) == expected
    assert allocations_per_step(model, X, y, batch_size=batch_size, steps=12) == 0


# -- config.SPECIALIZE = "auto": generated only when compiled already or worth its compile ---

@pytest.fixture
def auto(tmp_path, monkeypatch):
    """The "auto" rule, an empty kernel cache and no generated module loaded yet."""
    monkeypatch.setattr(config, "SPECIALIZE", "auto")
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(specialize, "_loaded", {})
    return tmp_path


AUTO_LAYERS = [(3, "tanh"), (2, "softmax")]


def auto_fit(epochs, batch_size=4):
    """(the kernel the fit's run chose, the model): 2-3-2 on 8 rows."""
    model, X, y = make(2, AUTO_LAYERS, None, "adam", "float32", l2=0.0, n=8)
    return start_run(model, *model.as_arrays(X, y), batch_size, True, epochs).kernel, model


def test_auto_trains_a_short_fit_of_a_new_architecture_with_the_generic_kernel(auto):
    kernel, model = auto_fit(epochs=10)
    assert kernel is None
    steps = 10 * 2
    assert steps * config.SPECIALIZE_STEP_SAVING < specialize.expected_compile_seconds(
        model.spec)
    # nothing generated was compiled for it
    assert all(k is None or not k.signatures for k in specialize._loaded.values())


def test_auto_uses_the_generated_kernel_when_the_fit_pays_for_its_compile(auto):
    model = make(2, AUTO_LAYERS, None, "adam", "float32", l2=0.0, n=8)[0]
    needed = specialize.expected_compile_seconds(model.spec) / config.SPECIALIZE_STEP_SAVING
    assert auto_fit(epochs=int(needed // 2) - 1)[0] is None  # two steps an epoch
    assert auto_fit(epochs=int(needed // 2) + 1)[0] is not None


def test_auto_uses_a_generated_kernel_compiled_before(auto, monkeypatch):
    monkeypatch.setattr(config, "SPECIALIZE", True)
    kernel, model = auto_fit(epochs=1)  # compiles it (a user who asked for it, say)
    X, y = make(2, AUTO_LAYERS, None, "adam", "float32", l2=0.0, n=8)[1:]
    model.fit(X, y, epochs=1, batch_size=4, progress=False)
    assert kernel is not None and len(kernel.signatures) == 1
    monkeypatch.setattr(config, "SPECIALIZE", "auto")
    assert auto_fit(epochs=1)[0] is kernel  # in memory
    specialize._loaded.clear()  # a new process: numba's disk cache has it
    again, _ = auto_fit(epochs=1)
    assert again is not None and again is not kernel and len(again.signatures) == 1
    assert sum(again.stats.cache_hits.values()) == 1 and not again.stats.cache_misses


def test_auto_gives_the_numbers_of_the_generated_kernel(auto, monkeypatch):
    X, y = make(2, AUTO_LAYERS, None, "adam", "float64", l2=0.01, n=8)[1:]
    histories, weights = [], []
    for mode in ("auto", True):
        monkeypatch.setattr(config, "SPECIALIZE", mode)
        model = make(2, AUTO_LAYERS, None, "adam", "float64", l2=0.01, n=8)[0]
        runs = recorded_runs(monkeypatch)
        histories.append(model.fit(X, y, epochs=5, batch_size=4, progress=False).loss)
        weights.append(np.concatenate([np.ravel(a) for pair in model.get_weights()
                                       for a in pair]))
        assert (runs[-1].kernel is None) == (mode == "auto")
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-12)
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-12, atol=1e-14)


def test_auto_counts_the_steps_of_the_whole_fit_not_of_one_segment(auto, monkeypatch):
    """A long fit runs in segments (plan.SEGMENT_EPOCHS): the rule weighs the compile
    against the whole fit, or a fit of millions of xor epochs would never pay for it."""
    from fastmlp.fit import plan
    monkeypatch.setattr(config, "SPECIALIZE_STEP_SAVING", 1.0)  # 3 steps pay for a compile
    monkeypatch.setattr(plan, "SEGMENT_EPOCHS", 1)  # every epoch a segment of 2 steps
    runs = recorded_runs(monkeypatch)
    model, X, y = make(2, AUTO_LAYERS, None, "adam", "float32", l2=0.0, n=8)
    assert 2 * config.SPECIALIZE_STEP_SAVING < specialize.expected_compile_seconds(model.spec)
    h = model.fit(X, y, epochs=4, batch_size=4, progress=False)
    assert h.epochs == 4 and runs[-1].kernel is not None


# The generated kernels write some of core/scalars.py's formulas inline (a call in a row
# loop stops LLVM's vectoriser): each inline form must be the scalar function, bit for bit.
def _compiled(expression, *names):
    from fastmlp.core.mathfn import fast_exp, fast_log1p, select
    namespace = dict(select=select, fast_exp=fast_exp, fast_log1p=fast_log1p)
    exec(f"def f({', '.join(names)}):\n    return {expression}", namespace)
    return config.jit(cache=False)(namespace["f"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inline_forms_of_the_generated_kernels_are_the_scalar_functions(dtype):
    from fastmlp.core import losses, scalars
    from fastmlp.core.activations import LEAKY_SLOPE
    rng = np.random.default_rng(3)
    values = np.concatenate([3 * rng.standard_normal(50), [0, -0.0, 100, -100]]).astype(dtype)
    others = rng.standard_normal(values.size).astype(dtype)
    zero, slope = dtype(0), dtype(LEAKY_SLOPE)
    for code, text in codegen.INLINE_ACTIVATE.items():
        f = _compiled(text.format(v="v"), "v", "zero", "slope")
        for v in values:
            assert f(v, zero, slope) == scalars.activate(v, code), (code, v)
    for code, text in codegen.INLINE_GRAD.items():
        f = _compiled(text.format(g="g", a="a"), "g", "a", "zero", "slope")
        for g, a in zip(others, values):
            assert f(g, a, zero, slope) == scalars.activation_grad(g, a, code), (code, a)
    terms = {losses.MSE: scalars.squared_error_term,
             losses.BINARY_CROSS_ENTROPY: scalars.binary_cross_entropy_term}
    assert set(terms) == set(codegen.INLINE_LOSS_TERM)
    for code, text in codegen.INLINE_LOSS_TERM.items():
        f = _compiled(text.format(a="x", z="x", t="t"), "x", "t")
        for x, t in zip(values, others):
            assert f(x, t) == terms[code](x, t), (code, x)
