"""fit and the model API on device="cuda": XOR, non-finite losses, moving between devices,
streamed data, validation, save/load and set_weights."""
import numpy as np
import pytest

import fastmlp
from tests.runs import start as start_run
from fastmlp import config

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def same_weights(a, b, **tol):
    for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(Wb, Wa, **tol)
        np.testing.assert_allclose(bb, ba, **tol)


def regression(n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1


def test_xor_trains_to_100_percent_on_cuda():
    model = fastmlp.MLP(2, [(8, "tanh"), (1, "sigmoid")], optimizer=fastmlp.Adam(lr=0.1),
                        seed=0, device="cuda")
    history = model.fit(XOR_X, XOR_Y, epochs=30, batch_size=4, progress=False)
    assert model.evaluate(XOR_X, XOR_Y)["accuracy"] == 1.0
    assert list(model.predict(XOR_X)) == [0, 1, 1, 0]
    assert history.loss[-1] < 0.5 * history.loss[0]


# The simulator computes with numpy scalars, which warn as they overflow (in its threads,
# where np.errstate does not reach).
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fused", [False, True])
def test_nonfinite_loss_stops_training_as_on_the_cpu(monkeypatch, fused, dtype):
    """Training diverges until a step is not finite. In float32 a step before that one has
    finite gradients above 1.8e19, whose squares overflow float32: both devices sum them in
    float64 and go on, to stop at the same later step."""
    monkeypatch.setattr(config, "CUDA_FUSED", fused)
    X, y = regression(16)
    errors, models = [], []
    for device in ("cpu", "cuda"):
        model = fastmlp.MLP(3, [(6, "relu"), (1, "identity")], optimizer=fastmlp.SGD(lr=1e4),
                            dtype=dtype, seed=0, device=device)
        with pytest.raises(FloatingPointError, match="NaN or infinite.*keeps the weights") \
                as error, np.errstate(over="ignore", invalid="ignore"):
            model.fit(X, y * 1e3, epochs=2, batch_size=8, progress=False)
        errors.append(str(error.value))
        models.append(model)
    assert errors[1] == errors[0]  # same cause, epoch and batch
    # the weights from before that step
    same_weights(models[0], models[1], rtol=1e-12 if dtype == "float64" else 1e-5)
    for W, b in models[1].get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()
    if dtype == "float64":  # in float32 these weights (~1e24) overflow the forward pass
        assert np.isfinite(models[1].forward(X)).all()  # already: why the next loss was inf


def test_to_moves_weights_and_optimizer_state():
    X, y = regression()
    kwargs = dict(optimizer=fastmlp.Adam(lr=0.05), dtype="float64", seed=4)
    stay = fastmlp.MLP(3, [(5, "tanh"), (1, "identity")], **kwargs)
    move = fastmlp.MLP(3, [(5, "tanh"), (1, "identity")], **kwargs)
    for model in (stay, move):
        model.fit(X, y, epochs=1, batch_size=5, progress=False)
    assert move.to("cuda") is move and move.device == "cuda"
    same_weights(stay, move, rtol=0)
    for model in (stay, move):  # Adam's moments and step count, and the shuffle RNG, moved
        model.fit(X, y, epochs=1, batch_size=5, progress=False)
    same_weights(stay, move, rtol=1e-12)
    assert move.to("cpu") is move and move.device == "cpu" and not hasattr(move.backend, "dws")
    for model in (stay, move):
        model.fit(X, y, epochs=1, batch_size=5, progress=False)
    same_weights(stay, move, rtol=1e-12)
    np.testing.assert_array_equal(move.backend.get_state()["opt_step"],
                                  stay.backend.get_state()["opt_step"])
    assert "device='cpu'" in repr(move)


def test_streamed_data_gives_the_same_batches(monkeypatch):
    """Data over the device budget goes up in chunks of whole batches, permuted on the
    host: the same steps as with the data resident (and as on the CPU)."""
    X, y = regression(14)
    kwargs = dict(optimizer=fastmlp.SGD(lr=0.05, momentum=0.5), dtype="float64", seed=2)
    cpu = fastmlp.MLP(3, [(4, "sigmoid"), (1, "identity")], **kwargs)
    cpu.fit(X, y, epochs=2, batch_size=4, progress=False)
    row_bytes = (3 + 1) * 8
    monkeypatch.setattr(config, "CUDA_DATA_BYTES", 9 * row_bytes)  # chunks of 8 rows
    gpu = fastmlp.MLP(3, [(4, "sigmoid"), (1, "identity")], device="cuda", **kwargs)
    history = gpu.fit(X, y, epochs=2, batch_size=4, progress=True)
    same_weights(cpu, gpu, rtol=1e-12)
    assert history.epochs == 2


def test_validation_loss_and_evaluate_match_the_cpu():
    X, y = regression(10)
    Xv, yv = regression(6, seed=1)
    models = [fastmlp.MLP(3, [(4, "relu"), (1, "identity")], dtype="float64", seed=1, l2=0.1,
                          device=device) for device in ("cpu", "cuda")]
    histories = [m.fit(X, y, epochs=2, batch_size=5, validation_data=(Xv, yv),
                       progress=False) for m in models]
    np.testing.assert_allclose(histories[1].val_loss, histories[0].val_loss, rtol=1e-12)
    assert histories[1].val_loss[-1] == pytest.approx(models[1].loss(Xv, yv), rel=1e-12)
    assert models[1].evaluate(Xv, yv) == pytest.approx(models[0].evaluate(Xv, yv), rel=1e-12)


def test_inference_in_chunks_larger_than_the_workspace(monkeypatch):
    monkeypatch.setattr(fastmlp.config, "MIN_WORKSPACE_ROWS", 8)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 2))  # three chunks of the 8-row workspace
    models = [fastmlp.MLP(2, [(3, "relu"), (4, "softmax")], dtype="float64", seed=5,
                          device=device) for device in ("cpu", "cuda")]
    np.testing.assert_allclose(models[1].predict_proba(X), models[0].predict_proba(X),
                               rtol=1e-12)


def test_save_load_and_set_weights_on_cuda(tmp_path):
    X, y = regression(8)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], dtype="float64", seed=0,
                        device="cuda")
    model.fit(X, y, epochs=1, batch_size=4, progress=False)
    loaded = fastmlp.MLP.load(model.save(tmp_path / "m.npz"))
    assert loaded.device == "cpu"
    same_weights(model, loaded, rtol=0)
    np.testing.assert_allclose(loaded.forward(X), model.forward(X), rtol=1e-12)
    weights = [(W * 2, b - 1) for W, b in loaded.get_weights()]
    model.set_weights(weights)
    loaded.set_weights(weights)
    np.testing.assert_allclose(model.forward(X), loaded.forward(X), rtol=1e-12)
    np.testing.assert_allclose(model.gradients(X, y)[0][0], loaded.gradients(X, y)[0][0],
                               rtol=1e-12)


def test_ctrl_c_keeps_the_steps_that_ran(monkeypatch):
    from fastmlp.cuda.network import StepPlan
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", False)  # one launch per step (for many
    # steps per launch: test_fused_multistep.py)
    X, y = regression(16)
    kwargs = dict(optimizer=fastmlp.SGD(lr=0.01), dtype="float64", seed=0)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], device="cuda", **kwargs)
    real, launched = StepPlan.launch, []

    def interrupted_at_the_sixth_step(self, *args):
        if len(launched) == 5:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while the host queues launches
        launched.append(1)
        return real(self, *args)

    monkeypatch.setattr(StepPlan, "launch", interrupted_at_the_sixth_step)
    with pytest.warns(RuntimeWarning, match="interrupted"):  # a warning, not a print
        history = model.fit(X, y, epochs=10, batch_size=4, shuffle=False, progress=False)
    assert history.interrupted
    assert model.backend.dws.opt_step == 5  # the five queued steps ran and are counted
    replay = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], **kwargs)
    replay.fit(X, y, epochs=1, batch_size=4, shuffle=False, progress=False)
    replay.fit(X[:4], y[:4], epochs=1, batch_size=4, shuffle=False, progress=False)
    same_weights(replay, model, rtol=1e-12)


@pytest.mark.parametrize("steps_per_launch", [False, "auto"])
def test_zero_steps_change_nothing_on_cuda(monkeypatch, steps_per_launch):
    """training.fit's 0-step call before its first step moves nothing on the device path
    either: weights, cursor, schedule and the epoch's statistics stay as they were, and
    the fit after it trains as one without it."""
    monkeypatch.setattr(config, "CUDA_FUSED_STEPS", steps_per_launch)
    X, y = regression()
    args = (3, [(4, "tanh"), (1, "identity")])
    model = fastmlp.MLP(*args, seed=0, device="cuda")
    b = model.backend
    schedule = fastmlp.schedules.Constant()
    r = start_run(model, *model.as_arrays(X, y), 4, True, 2, schedule=schedule)
    before = (b.get_state(), r.cursor(), schedule.state.copy(), r.epoch_loss.copy())
    assert r.train_steps(0) == (0, 0)
    after = (b.get_state(), r.cursor(), schedule.state.copy(), r.epoch_loss.copy())
    for key in before[0]:
        np.testing.assert_array_equal(before[0][key], after[0][key], err_msg=key)
    assert before[1] == after[1]
    np.testing.assert_array_equal(before[2], after[2])
    np.testing.assert_array_equal(before[3], after[3])
    plain = fastmlp.MLP(*args, seed=0, device="cuda")
    plain.fit(X, y, epochs=2, batch_size=4, progress=False)
    model.fit(X, y, epochs=2, batch_size=4, progress=False)  # its own 0-step call included
    same_weights(plain, model, rtol=0, atol=0)
