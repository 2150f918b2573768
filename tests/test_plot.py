"""History.plot / plot_history: panels for what the History holds, files written whole."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import datasets
from fastmlp.fit.history import History
from fastmlp.fit.plot import plot_history

pytest.importorskip("matplotlib", reason="pip install 'fastmlp[plot]'")
import matplotlib.pyplot as plt  # noqa: E402  (after the skip)


def history(epochs=5, layers=3, **extra):
    rng = np.random.default_rng(0)
    h = History(loss=np.linspace(1, 0.1, epochs), val_loss=np.linspace(1.2, 0.3, epochs),
                grad_norms=rng.uniform(1e-6, 1, (epochs, layers)),
                seconds=np.full(epochs, 0.1))
    for name, value in extra.items():
        setattr(h, name, value)
    return h


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_panels_follow_what_the_history_has(tmp_path):
    fig = plot_history(history(), tmp_path / "a.png")
    assert titles(fig) == ["loss", "gradient norm per layer"]
    loss_ax, norm_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["training", "validation"]
    assert norm_ax.get_yscale() == "log" and len(norm_ax.lines) == 3
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), np.linspace(1, 0.1, 5))
    fig = plot_history(history(lr=np.full(5, 0.01), val_accuracy=np.linspace(0.5, 0.9, 5)),
                       tmp_path / "b.png")
    assert titles(fig) == ["loss", "accuracy", "learning rate", "gradient norm per layer"]


def test_file_is_a_png_and_nothing_else_is_left(tmp_path):
    history().plot(tmp_path / "run.png")
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["run.png"]
    history().plot(tmp_path / "run.svg")
    assert b"<svg" in (tmp_path / "run.svg").read_bytes()[:500]


def test_unwritable_path_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        history().plot(tmp_path / "missing" / "run.png")
    assert os.listdir(tmp_path) == []


def test_draws_into_given_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2)
    assert history().plot(ax=axes) is fig
    assert [ax.get_title() for ax in axes] == ["loss", "gradient norm per layer"]
    fig2, one = plt.subplots()
    history().plot(ax=one)
    assert one.get_title() == "loss"
    plt.close("all")


def test_long_histories_are_thinned_and_zero_norms_kept_off_the_log_axis(tmp_path):
    h = history(epochs=100_000, layers=2)
    h.grad_norms[:10] = 0
    fig = plot_history(h, tmp_path / "long.png")
    xs = fig.axes[0].lines[0].get_xdata()
    assert len(xs) <= 4000 and xs[0] == 1 and xs[-1] == 100_000


def test_a_fitted_history_plots(tmp_path):
    X, y = datasets.xor()
    model = fastmlp.MLP(2, [(4, "tanh"), (1, "sigmoid")], seed=0)
    h = model.fit(X, y, epochs=20, batch_size=4, progress=False, validation_data=(X, y))
    fig = h.plot(tmp_path / "xor.png")
    norms = [ax for ax in fig.axes if ax.get_ylabel().startswith("gradient norm")]
    assert len(norms[0].lines) == 2  # one gradient-norm line per layer


def test_a_format_matplotlib_cannot_write_names_the_users_file(tmp_path):
    target = tmp_path / "curves.xyz"
    with pytest.raises(ValueError) as info:
        history().plot(target)
    message = str(info.value)
    assert str(target) in message and "png" in message
    assert ".tmp" not in message and ".fastmlp-" not in message  # not the temporary file
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
    plt.close("all")


def test_a_plot_is_written_whole(tmp_path):
    path = history().plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close("all")
