"""fit's control of a run: early stopping, callbacks, continuing, reset, partial_fit, the
validation split, class labels, L-BFGS, and what an error or Ctrl-C leaves behind."""
import threading
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.cpu import steps as cpu_steps
from fastmlp.core import schedules


def digits(n=600):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def same_weights(a, b):
    return all(np.array_equal(Wa, Wb) and np.array_equal(ba, bb)
               for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()))


def overfitting_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 10))
    y = X[:, 0] + 0.5 * rng.standard_normal(40)  # noisy: a wide net memorises the noise
    Xv = rng.standard_normal((200, 10))
    yv = Xv[:, 0] + 0.5 * rng.standard_normal(200)
    return X, y, Xv, yv


def test_early_stopping_stops_within_patience_and_restores_the_best_epoch():
    X, y, Xv, yv = overfitting_problem()
    model = fastmlp.MLP(10, [(128, "relu"), (1, "identity")], dtype="float64", seed=0,
                        optimizer=fastmlp.Adam(lr=0.01))
    h = model.fit(X, y, epochs=500, batch_size=8, validation_data=(Xv, yv),
                  early_stopping=True, patience=5, progress=False)
    assert h.stopped_early and h.epochs < 500
    best = int(np.argmin(h.val_loss))
    assert h.best_epoch == best and h.epochs - 1 - best == 5  # stopped `patience` later
    assert model.loss(Xv, yv) == h.val_loss[best]  # exactly the best epoch's weights


def test_early_stopping_without_restore_keeps_the_last_weights():
    X, y, Xv, yv = overfitting_problem()
    model = fastmlp.MLP(10, [(128, "relu"), (1, "identity")], dtype="float64", seed=0,
                        optimizer=fastmlp.Adam(lr=0.01))
    h = model.fit(X, y, epochs=500, batch_size=8, validation_data=(Xv, yv),
                  early_stopping=True, patience=5, restore_best_weights=False,
                  progress=False)
    assert model.loss(Xv, yv) == h.val_loss[-1] != h.val_loss[h.best_epoch]


def test_callbacks_see_each_epoch_and_can_stop():
    X, y = digits(200)
    seen = []

    def record(model, history):
        seen.append((history.epochs, model.evaluate(X, y)["accuracy"]))
        return history.epochs < 3

    model = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=0)
    h = model.fit(X, y, epochs=10, callbacks=[record], progress=False)
    assert [e for e, _ in seen] == [1, 2, 3] and h.epochs == 3

    def stop(model, history):
        raise fastmlp.StopTraining
    assert model.fit(X, y, epochs=10, callbacks=stop, progress=False).epochs == 1


def test_a_failing_callback_leaves_the_last_completed_epoch():
    X, y = digits(200)
    model = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=0)
    twin = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=0)

    def broken(model, history):
        if history.epochs == 2:
            raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        model.fit(X, y, epochs=5, callbacks=[broken], progress=False)
    twin.fit(X, y, epochs=2, progress=False)
    assert same_weights(model, twin)


@pytest.mark.parametrize("batch_size", [16, 7])
def test_two_fits_equal_one_longer_fit_bit_for_bit(batch_size, tmp_path):
    X, y = digits(100)
    args = (64, [(16, "tanh"), (10, "softmax")])
    one, two, saved = (fastmlp.MLP(*args, seed=3) for _ in range(3))
    one.fit(X, y, epochs=6, batch_size=batch_size, progress=False)
    two.fit(X, y, epochs=3, batch_size=batch_size, progress=False)
    two.fit(X, y, epochs=3, batch_size=batch_size, progress=False)
    assert same_weights(one, two)
    saved.fit(X, y, epochs=3, batch_size=batch_size, progress=False)
    path = saved.save(tmp_path / "half")
    loaded = fastmlp.MLP.load(path)
    loaded.fit(X, y, epochs=3, batch_size=batch_size, progress=False)
    assert same_weights(one, loaded)


def test_reset_and_partial_fit():
    X, y = digits(100)
    model = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=1)
    fresh = model.get_weights()
    assert model.partial_fit(X, y).epochs == 1
    assert not same_weights(model, fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=1))
    model.reset()
    for (W, b), (W0, b0) in zip(model.get_weights(), fresh):
        np.testing.assert_array_equal(W, W0)
    again = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=1)
    model.fit(X, y, epochs=2, progress=False)
    again.fit(X, y, epochs=2, progress=False, reset=True)
    assert same_weights(model, again)


def test_validation_split_is_stratified_and_seeded():
    X, y = digits(500)
    a = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=5)
    b = fastmlp.MLP(64, [(16, "relu"), (10, "softmax")], seed=5)
    ha = a.fit(X, y, epochs=2, validation_split=0.2, progress=False)
    hb = b.fit(X, y, epochs=2, validation_split=0.2, progress=False)
    np.testing.assert_array_equal(ha.val_loss, hb.val_loss)
    assert len(ha.val_accuracy) == 2 and 0 <= ha.val_accuracy[-1] <= 1
    from fastmlp.inputs.split import split_validation
    T = np.eye(10)[y]
    _, Tt, _, (_, Tv) = split_validation(X, T, None, 0.2, 5, True)
    share = Tv.sum(0) / Tv.shape[0]
    np.testing.assert_allclose(share, T.sum(0) / T.shape[0], atol=0.01)
    with pytest.raises(ValueError, match="validation_split must be in"):
        a.fit(X, y, validation_split=1.5)
    with pytest.raises(ValueError, match="not both"):
        a.fit(X, y, validation_split=0.1, validation_data=(X, y))


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([10, 30, 70])])
def test_class_labels_of_any_type(labels, tmp_path):
    X, y = digits(300)
    y3 = labels[y % 3]
    model = fastmlp.MLP(64, [(16, "relu"), (3, "softmax")], seed=0)
    model.fit(X, y3, epochs=3, progress=False)
    np.testing.assert_array_equal(model.classes_, np.sort(labels))
    pred = model.predict(X)
    assert set(pred) <= set(labels) and pred.dtype == labels.dtype
    assert model.evaluate(X, y3)["accuracy"] == np.mean(pred == y3)
    with pytest.raises(ValueError, match="labels the model does not know"):
        model.evaluate(X[:2], labels[:2].astype(object).tolist()[:1] + ["unknown"]
                       if labels.dtype.kind == "U" else np.array([10, 11]))
    loaded = fastmlp.MLP.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(X), pred)


def test_binary_labels_on_one_sigmoid_output():
    X, y = digits(200)
    yes_no = np.where(y < 5, "no", "yes")
    model = fastmlp.MLP(64, [(8, "relu"), (1, "sigmoid")], seed=0)
    model.fit(X, yes_no, epochs=5, progress=False)
    assert set(model.predict(X)) <= {"no", "yes"}


def test_integer_labels_index_the_outputs_as_before():
    X, y = digits(200)
    model = fastmlp.MLP(64, [(8, "relu"), (10, "softmax")], seed=0)
    model.fit(X, y % 4, epochs=1, progress=False)  # 4 of 10 classes seen
    np.testing.assert_array_equal(model.classes_, np.arange(10))


def test_floating_point_error_carries_the_history():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 3))
    y = X.sum(1) * 1e3
    model = fastmlp.MLP(3, [(16, "relu"), (1, "identity")], optimizer=fastmlp.SGD(lr=1e-3),
                        seed=0)
    lr = [1e-5]

    def blow_up(model, history):
        model.optimizer.lr = 1e4  # from the next fit call's config on
    model.fit(X, y, epochs=2, batch_size=4, progress=False)
    model.optimizer.lr = 1e4
    with pytest.raises(FloatingPointError) as info:
        model.fit(X, y, epochs=50, batch_size=4, progress=False)
    history = info.value.history
    assert isinstance(history, fastmlp.History) and history.epochs < 50
    assert np.isfinite(history.loss).all() and lr


def test_ctrl_c_counts_every_step_the_compiled_call_ran(monkeypatch, generic_kernel):
    X = np.random.default_rng(0).standard_normal((64, 3))
    y = X.sum(1)
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    real = cpu_steps.train_steps
    calls = []

    def interrupted_during_the_third_call(*args):
        result = real(*args)  # the steps ran; Ctrl-C arrives as the call returns
        calls.append(result[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(cpu_steps, "train_steps", interrupted_during_the_third_call)
    with pytest.warns(RuntimeWarning, match="interrupted after"):
        h = model.fit(X, y, epochs=10**6, batch_size=4, progress=True)
    assert h.interrupted and h.epochs == sum(calls) // 16


def test_ctrl_c_as_a_generated_kernel_returns_keeps_its_rate_records(monkeypatch):
    """A generated kernel keeps no rate record; the run writes it after the call (and moves
    the schedule's counters). Ctrl-C raised as the call returned skipped that: History.lr
    held NaN for the call's epochs and a schedule's counters fell behind the steps."""
    from fastmlp.cpu.run import CpuRun
    X = np.random.default_rng(0).standard_normal((64, 3))
    y = X.sum(1)
    schedule = schedules.Constant()
    model = fastmlp.MLP(3, [(4, "tanh"), (1, "identity")], seed=0)
    real_kernel = CpuRun._kernel
    calls = []

    class PressedAsItReturns:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getattr__(self, name):  # compiling and loading go to the kernel itself
            return getattr(self.kernel, name)

        def __call__(self, *args):
            result = self.kernel(*args)
            calls.append(result[1])
            if len(calls) == 3:
                raise KeyboardInterrupt
            return result

    def pressing(run):
        kernel, extra = real_kernel(run)
        return (kernel if run.kernel is None else PressedAsItReturns(kernel)), extra

    monkeypatch.setattr(CpuRun, "_kernel", pressing)
    with pytest.warns(RuntimeWarning, match="interrupted after"):
        h = model.fit(X, y, epochs=10**6, batch_size=64, progress=True, schedule=schedule)
    assert h.interrupted and len(calls) == 3 and h.epochs == sum(calls) > 2  # one-step epochs
    assert len(h.lr) == h.epochs and np.isfinite(h.lr).all()
    assert schedule.state[schedules.STEPS] == sum(calls)


@pytest.mark.parametrize("restore", [False, True])
def test_ctrl_c_with_validation_keeps_one_entry_an_epoch_and_says_what_it_kept(
        restore, monkeypatch, generic_kernel):
    """Calls end at epoch ends when there are validation rows: a press as a call returned
    logged its epoch without validating it (val_loss one entry short of loss, misaligned
    once entries merge). That epoch's val_loss and val_accuracy are NaN now; and with early
    stopping's restore_best_weights the warning says the best epoch's weights are kept,
    which is what happens."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X[:, 0] > 0).astype(int)
    model = fastmlp.MLP(3, [(4, "tanh"), (2, "softmax")], seed=0)
    real = cpu_steps.train_steps
    calls = []

    def pressed_as_the_fourth_epoch_ends(*args):
        result = real(*args)
        if args[5] > 0:  # n_steps: not the compile call
            calls.append(result[1])
            if sum(calls) == 4 * 3:  # 48 training rows in batches of 16
                raise KeyboardInterrupt
        return result

    monkeypatch.setattr(cpu_steps, "train_steps", pressed_as_the_fourth_epoch_ends)
    with pytest.warns(RuntimeWarning, match="best epoch" if restore else "last whole batch"):
        h = model.fit(X, y, epochs=50, batch_size=16, progress=False, validation_split=0.25,
                      early_stopping=restore, patience=1000)
    assert h.interrupted and h.epochs == 4, calls
    assert len(h.loss) == len(h.val_loss) == len(h.val_accuracy) == h.epochs
    assert np.isfinite(h.val_loss[:3]).all() and np.isnan(h.val_loss[3])


def test_a_huge_epoch_count_allocates_nothing_up_front():
    X, y = np.zeros((4, 2)), np.zeros(4)
    model = fastmlp.MLP(2, [(2, "relu"), (1, "identity")], seed=0)
    h = model.fit(X, y, epochs=10**12, batch_size=4, progress=False,
                  callbacks=lambda m, h: h.epochs < 3)
    assert h.epochs == 3


def test_two_threads_fitting_one_model_are_serialised():
    X, y = digits(300)
    args = (64, [(32, "relu"), (10, "softmax")])
    shared, serial = fastmlp.MLP(*args, seed=2), fastmlp.MLP(*args, seed=2)
    threads = [threading.Thread(target=shared.fit, args=(X, y),
                                kwargs=dict(epochs=3, progress=False)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serial.fit(X, y, epochs=3, progress=False)
    serial.fit(X, y, epochs=3, progress=False)
    assert same_weights(shared, serial)


def test_interrupt_notice_is_a_warning_not_a_print(monkeypatch, capsys, generic_kernel):
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cpu_steps, "train_steps", interrupted)
    model = fastmlp.MLP(2, [(3, "relu"), (1, "identity")], seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(np.zeros((4, 2)), np.zeros(4), epochs=5, progress=False)
    assert capsys.readouterr().out == ""
    assert any("interrupted" in str(w.message) for w in caught)


def test_lbfgs_matches_scikit_learn_from_the_same_start():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    X, y = digits(1797)
    model = fastmlp.MLP(64, [(32, "relu"), (10, "softmax")], dtype="float64", seed=0,
                        optimizer=fastmlp.LBFGS(max_iter=200))
    start = model.get_weights()
    h = model.fit(X, y, epochs=200)
    clf = MLPClassifier((32,), solver="lbfgs", alpha=0.0, max_iter=1, warm_start=True,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        clf.coefs_ = [W.copy() for W, _ in start]
        clf.intercepts_ = [b.copy() for _, b in start]
        clf.set_params(max_iter=200)
        clf.fit(X, y)
    assert h.loss[-1] == pytest.approx(model.loss(X, y))
    assert model.loss(X, y) == pytest.approx(clf.loss_, rel=0.01, abs=1e-3)


def test_a_long_fit_merges_epochs_to_bound_its_history(monkeypatch):
    from fastmlp import config
    monkeypatch.setattr(config, "HISTORY_MAX_ENTRIES", 8)
    X, y = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]), np.array([1, 1, 0, 0])
    args = (2, [(3, "tanh"), (1, "sigmoid")])
    model, full = fastmlp.MLP(*args, seed=0), fastmlp.MLP(*args, seed=0)
    h = model.fit(X, y, epochs=37, batch_size=4, progress=False)
    monkeypatch.setattr(config, "HISTORY_MAX_ENTRIES", 1000)
    f = full.fit(X, y, epochs=37, batch_size=4, progress=False)
    assert h.epochs == 37 and h.epoch_stride == 8 and len(h.loss) == 5  # 4 x 8 + 5
    np.testing.assert_allclose(h.loss[:4], f.loss[:32].reshape(4, 8).mean(1))
    np.testing.assert_allclose(h.loss[4], f.loss[32:].mean())
    assert h.seconds.shape == (5,) and (h.seconds > 0).all()  # each entry sums its epochs'
    assert h.grad_norms.shape == (5, 2)
