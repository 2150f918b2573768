"""plot_history: how a run went, in up to four panels (matplotlib, the `plot` extra).

1. loss and validation loss per epoch; 2. accuracy, where the History has one;
3. the learning rate, where it has one; 4. each layer's gradient norm on a log scale: the
view in which a deep sigmoid net's early layers are seen to stop learning.
"""
import io
import os

import numpy as np

from ..files import atomic_write

#: Longer series are drawn at this many evenly spaced epochs (a tiny net can run millions of
#: epochs; the picture does not need them all and matplotlib would take minutes).
MAX_POINTS = 4000


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastmlp[plot]'") from None
    return matplotlib


def _series(history, name):
    values = vars(history).get(name)  # a History's fields, and those a run added
    if values is None:
        return None
    values = np.asarray(values, dtype=float)
    return values if values.size else None


def _panels(history):
    """[(title, draw(ax, epochs, pick))] for the panels this History has data for."""
    loss, val_loss = _series(history, "loss"), _series(history, "val_loss")
    acc, val_acc = _series(history, "accuracy"), _series(history, "val_accuracy")
    lr, norms = _series(history, "lr"), _series(history, "grad_norms")
    panels = []

    def draw_loss(ax, epochs, pick):
        if loss is not None:
            ax.plot(epochs(loss), pick(loss), label="training")
        if val_loss is not None:
            ax.plot(epochs(val_loss), pick(val_loss), label="validation")
        ax.set_ylabel("loss")
        shown = [v for v in (loss, val_loss) if v is not None]
        low = min(np.nanmin(v) for v in shown) if shown else 0
        high = max(np.nanmax(v) for v in shown) if shown else 0
        if low > 0 and high / low > 20:  # a log axis only where the loss spans decades
            ax.set_yscale("log")
        ax.legend()

    panels.append(("loss", draw_loss))
    if acc is not None or val_acc is not None:
        def draw_accuracy(ax, epochs, pick):
            for values, label in ((acc, "training"), (val_acc, "validation")):
                if values is not None:
                    ax.plot(epochs(values), pick(values), label=label)
            ax.set_ylabel("accuracy")
            ax.legend()
        panels.append(("accuracy", draw_accuracy))
    if lr is not None:
        def draw_lr(ax, epochs, pick):
            ax.plot(epochs(lr), pick(lr))
            ax.set_ylabel("learning rate")
        panels.append(("learning rate", draw_lr))
    if norms is not None and norms.ndim == 2 and norms.shape[1]:
        def draw_norms(ax, epochs, pick):
            for l in range(norms.shape[1]):
                column = norms[:, l].copy()
                column[column <= 0] = np.nan  # a log axis cannot show 0
                ax.plot(epochs(column), pick(column), label=f"layer {l}")
            ax.set_yscale("log")
            ax.set_ylabel("gradient norm ||dW||")
            ax.legend(fontsize="small", ncol=2 if norms.shape[1] > 4 else 1)
        panels.append(("gradient norm per layer", draw_norms))
    return panels


def plot_history(history, path=None, ax=None):
    """Draw the History; returns the matplotlib Figure.

    path: write the figure there (format from the suffix, e.g. .png, .svg, .pdf; written
    atomically) without touching pyplot's global state. ax: a sequence of Axes to draw into,
    one per panel (loss, then accuracy, learning rate, gradient norms as the History has
    them); a single Axes gets the loss panel only. Neither: a new pyplot figure.
    """
    panels = _panels(history)
    if ax is not None:
        axes = list(np.ravel(ax)) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if len(axes) < len(panels):
            panels = panels[:len(axes)]
        fig = axes[0].figure
    elif path is not None:
        _matplotlib()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        axes = list(np.ravel(fig.subplots(1, len(panels), squeeze=False)))
    else:
        _matplotlib()
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4),
                                 squeeze=False, layout="constrained")
        axes = list(np.ravel(axes))

    def epochs(values):
        return _keep(len(values)) + 1

    def pick(values):
        return values[_keep(len(values))]

    from matplotlib.ticker import MaxNLocator
    for axis, (title, draw) in zip(axes, panels):
        draw(axis, epochs, pick)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if path is not None:
        _save(fig, path)
    return fig


def _keep(n):
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_POINTS).astype(np.int64))


def _save(fig, path):
    """Render into memory first, then write atomically: a format matplotlib cannot write is
    a ValueError naming the user's file (never the temporary one), and nothing is written."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot write the plot to {os.fspath(path)!r}: matplotlib writes "
                         f"{', '.join(sorted(supported))}, not {fmt!r}; use e.g. a .png name")
    image = io.BytesIO()
    fig.savefig(image, format=fmt, dpi=120)
    return atomic_write(path, lambda f: f.write(image.getbuffer()))
