"""fit: minibatch bookkeeping, History, reproducibility, non-finite losses, Ctrl-C."""
import numpy as np
import pytest

import fastmlp
from fastmlp.cpu import steps as cpu_steps
from tests import reference as ref


def regression_data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1


def test_last_partial_batch_is_trained_on():
    # 10 rows in batches of 4: steps on rows 0-3, 4-7 and the remainder 8-9, by hand.
    X, y = regression_data(10)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], optimizer=fastmlp.SGD(lr=0.1),
                        dtype="float64", seed=0)
    weights = model.get_weights()
    layers = model.layers
    for start in (0, 4, 8):
        grads = ref.gradients(weights, layers, X[start:start + 4], y[start:start + 4, None],
                              "mse")
        weights = [(W - 0.1 * dW, b - 0.1 * db) for (W, b), (dW, db) in zip(weights, grads)]
    model.fit(X, y, epochs=1, batch_size=4, shuffle=False, progress=False)
    for (W, b), (eW, eb) in zip(model.get_weights(), weights):
        np.testing.assert_allclose(W, eW, rtol=1e-12)
        np.testing.assert_allclose(b, eb, rtol=1e-12)


def test_history_contents():
    X, y = regression_data(50)
    model = fastmlp.MLP(3, [(8, "relu"), (5, "tanh"), (1, "identity")], seed=1,
                        optimizer=fastmlp.Adam(lr=0.01))
    h = model.fit(X, y, epochs=7, batch_size=8, validation_data=(X[:10], y[:10]),
                  progress=False)
    assert len(h.loss) == len(h.val_loss) == len(h.seconds) == h.epochs == 7
    assert h.grad_norms.shape == (7, 3) and np.all(h.grad_norms > 0)
    assert all(s > 0 for s in h.seconds)
    assert h.loss[-1] < h.loss[0]
    assert h.val_loss[-1] == pytest.approx(model.loss(X[:10], y[:10]), rel=1e-6)
    assert not h.interrupted
    empty = model.fit(X, y, epochs=0)
    assert empty.epochs == 0 and empty.grad_norms.shape == (0, 3)


def test_history_is_arrays_and_seconds_add_up_across_split_epochs():
    # With a bar, calls start at one step and grow, so they begin and end inside epochs;
    # each epoch must still get its share, and the shares add up to the time spent training.
    import time
    X, y = regression_data(60)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    start = time.perf_counter()
    h = model.fit(X, y, epochs=40, batch_size=7, progress=True)
    elapsed = time.perf_counter() - start
    for figures in (h.loss, h.val_loss, h.seconds):
        assert isinstance(figures, np.ndarray) and figures.dtype == np.float64
    assert h.seconds.shape == (40,) and (h.seconds > 0).all()
    assert h.seconds.sum() < elapsed


def test_history_loss_is_mean_of_batch_losses():
    # One batch per epoch with SGD lr=0: every epoch's loss is the loss of the fixed model.
    X, y = regression_data(20)
    model = fastmlp.MLP(3, [(4, "sigmoid"), (1, "identity")], optimizer=fastmlp.SGD(lr=0.0),
                        l2=0.1, dtype="float64", seed=2)
    h = model.fit(X, y, epochs=3, batch_size=20, progress=False)
    np.testing.assert_allclose(h.loss, model.loss(X, y), rtol=1e-12)
    (dW0, _), (dW1, _) = model.gradients(X, y)
    np.testing.assert_allclose(h.grad_norms[0], [np.linalg.norm(dW0), np.linalg.norm(dW1)],
                               rtol=1e-10)


def test_same_seed_same_model_and_shuffle_matters():
    X, y = regression_data(40)

    def train(seed, shuffle=True):
        model = fastmlp.MLP(3, [(6, "relu"), (1, "identity")], seed=seed)
        model.fit(X, y, epochs=3, batch_size=8, shuffle=shuffle, progress=False)
        return model.get_weights()[0][0]

    np.testing.assert_array_equal(train(3), train(3))
    assert not np.array_equal(train(3), train(3, shuffle=False))
    assert not np.array_equal(train(3), train(4))


def test_fit_continues_training_across_calls():
    X, y = regression_data(16)
    a = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=5, dtype="float64")
    b = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=5, dtype="float64")
    a.fit(X, y, epochs=4, batch_size=16, shuffle=False, progress=False)
    b.fit(X, y, epochs=2, batch_size=16, shuffle=False, progress=False)
    b.fit(X, y, epochs=2, batch_size=16, shuffle=False, progress=False)  # Adam state kept
    for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(Wa, Wb)


def test_nonfinite_loss_stops_training_and_keeps_earlier_weights():
    X, y = regression_data(32)
    model = fastmlp.MLP(3, [(16, "relu"), (1, "identity")], optimizer=fastmlp.SGD(lr=1e4),
                        seed=0)
    with pytest.raises(FloatingPointError, match="loss became NaN or infinite.*keeps the weights from before"):
        model.fit(X, y * 1e3, epochs=50, batch_size=4, progress=False)
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()


def test_ctrl_c_stops_at_a_batch_boundary(monkeypatch, generic_kernel, capsys):
    X, y = regression_data(64)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0, dtype="float64",
                        optimizer=fastmlp.SGD(lr=0.01))
    real = cpu_steps.train_steps
    calls = []

    def interrupted_after_three_calls(*args):
        result = real(*args)
        calls.append(result[1])
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if Ctrl-C arrived during the compiled call
        return result

    monkeypatch.setattr(cpu_steps, "train_steps", interrupted_after_three_calls)
    with pytest.warns(RuntimeWarning, match="interrupted"):  # a warning, not a print
        h = model.fit(X, y, epochs=1000, batch_size=4, shuffle=False, progress=True)
    assert h.interrupted and h.epochs < 1000
    steps = sum(calls)
    # The model holds exactly the weights of `steps` whole batches.
    monkeypatch.setattr(cpu_steps, "train_steps", real)
    replay = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0, dtype="float64",
                         optimizer=fastmlp.SGD(lr=0.01))
    whole, part = divmod(steps, 16)
    replay.fit(X, y, epochs=whole, batch_size=4, shuffle=False, progress=False)
    if part:
        replay.fit(X[:4 * part], y[:4 * part], epochs=1, batch_size=4, shuffle=False,
                   progress=False)
    for (W, b), (rW, rb) in zip(model.get_weights(), replay.get_weights()):
        np.testing.assert_array_equal(W, rW)


def test_progress_bar_shows_epoch_loss_and_rate(capsys):
    X, y = regression_data(64)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    model.fit(X, y, epochs=3, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "epoch 3/3" in err and "loss=" in err and "samples/s" in err


def test_quiet_fit_makes_one_compiled_call_for_a_small_run(monkeypatch, generic_kernel):
    X, y = regression_data(64)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    real = cpu_steps.train_steps
    calls = []
    monkeypatch.setattr(cpu_steps, "train_steps",
                        lambda *a: calls.append(a[-1]) or real(*a))
    model.fit(X, y, epochs=20, batch_size=8, progress=False)
    assert calls == [160]


def test_batch_larger_than_data_is_one_full_batch():
    X, y = regression_data(5)
    model = fastmlp.MLP(3, [(2, "tanh"), (1, "identity")], seed=0)
    h = model.fit(X, y, epochs=2, batch_size=500, progress=False)
    assert h.epochs == 2


def test_overflowed_weights_restore_the_start_of_the_run(monkeypatch, generic_kernel):
    X, y = regression_data(32)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    before = model.get_weights()
    real = cpu_steps.train_steps

    def gradient_blows_up(*args):
        real(*args[:-1], 3)  # three good steps, then an update that wrote NaN
        args[0].params[0] = np.nan  # the TrainState's parameters the step wrote
        return cpu_steps.NONFINITE_GRADIENT, 3

    monkeypatch.setattr(cpu_steps, "train_steps", gradient_blows_up)
    with pytest.raises(FloatingPointError, match="gradient became NaN or infinite at epoch 1, "
                                                 "batch 4 after an update overflowed.*restored"):
        model.fit(X, y, epochs=5, batch_size=4, progress=False)
    for (W, b), (W0, b0) in zip(model.get_weights(), before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("kernel", ["generic", "generated"])
@pytest.mark.parametrize("epochs", [1, 3])
def test_a_last_update_that_overflows_the_weights_is_an_error(kernel, epochs, monkeypatch):
    """The update of a fit's (or a call's) last step that overflows the weights shows in no
    loss of that call: fit returned infinite weights without a word (and a later call
    backed them up as its restore point). Now the overflow is found after the call, the
    weights go back to the call's start and FloatingPointError says so."""
    from fastmlp import config
    monkeypatch.setattr(config, "SPECIALIZE", kernel == "generated")
    X = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    y = X[:, :1] * 200
    model = fastmlp.MLP(3, [(4, "relu"), (1, "identity")], optimizer=fastmlp.SGD(lr=1e37),
                        seed=0, dtype="float32")
    before = model.backend.get_params().copy()
    with pytest.raises(FloatingPointError, match="weights became infinite|after an update "
                                                 "overflowed") as raised:
        model.fit(X, y, epochs=epochs, batch_size=16, progress=False, callbacks=[
            lambda m, h: None] if epochs > 1 else [])
    assert "restored" in str(raised.value) and raised.value.history.epochs >= 1
    np.testing.assert_array_equal(model.backend.get_params(), before)


def test_quiet_fit_splits_a_long_epoch(monkeypatch, generic_kernel):
    # Pretend each step is a second's work: the first call then runs one step, not the epoch,
    # so Ctrl-C is not held up for a whole epoch; the weights are as for one call.
    from fastmlp.fit import loop as training
    X, y = regression_data(64)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0, dtype="float64")
    single = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0, dtype="float64")
    single.fit(X, y, epochs=2, batch_size=8, progress=False)
    monkeypatch.setattr(training, "FIRST_QUIET_FLOPS", 1)
    real = cpu_steps.train_steps
    calls = []
    monkeypatch.setattr(cpu_steps, "train_steps", lambda *a: calls.append(a[-1]) or real(*a))
    model.fit(X, y, epochs=2, batch_size=8, progress=False)
    assert calls[0] == 1 and sum(calls) == 16
    for (W, b), (sW, sb) in zip(model.get_weights(), single.get_weights()):
        np.testing.assert_array_equal(W, sW)


def test_an_epoch_of_one_batch_is_not_reshuffled():
    # One batch holds every row: its order would change only the rounding of the sums, so
    # the shuffle (and its draw from the seeded generator) is skipped.
    X, y = regression_data(12)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    state = model.backend.get_state()["rng"]
    model.fit(X, y, epochs=3, batch_size=12, progress=False)
    np.testing.assert_array_equal(model.backend.get_state()["rng"], state)
    model.fit(X, y, epochs=1, batch_size=5, progress=False)
    assert not np.array_equal(model.backend.get_state()["rng"], state)
