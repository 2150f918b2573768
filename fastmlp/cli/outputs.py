"""The names `fastmlp train` writes, checked before it trains: the model (.npz), the run
summary beside it (.npz.json), their twins for an interrupted run (.interrupted.npz), and
the plot. After training a write can still fail (the disk fills, a directory goes away);
then the model is kept somewhere and the message says where."""
import os
import tempfile

from . import labels
from .common import Failure, UsageError, check_not_an_input, check_writable

#: What an interrupted run's files are called: model.npz -> model.interrupted.npz.
INTERRUPTED = ".interrupted"

#: The formats matplotlib's savefig writes without extra packages (its FigureCanvasBase
#: list), for when matplotlib itself is not there to ask.
PLOT_FORMATS = ("eps", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
                "tif", "tiff", "webp")


def model_file(path):
    """The file MLP.save writes for path ('.npz' appended when missing, as numpy does)."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def interrupted_name(path, n=1):
    """model.npz -> model.interrupted.npz; curves.png -> curves.interrupted.png; from n=2
    on model.interrupted-2.npz and so on."""
    stem, ext = os.path.splitext(os.fspath(path))
    return stem + INTERRUPTED + ("" if n == 1 else f"-{n}") + ext


def unused_interrupted_name(path, model=False):
    """The first of path's interrupted names that nothing occupies (for a model, nor its
    summary): an earlier interrupted run's files are never replaced by a later one's."""
    n = 1
    while True:
        name = interrupted_name(path, n)
        if not any(os.path.lexists(p) for p in
                   [name] + ([labels.sidecar_path(name)] if model else [])):
            return name
        n += 1


def _name_max(directory):
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or the fs does not say
        return 255


def _check_names(paths, option, given):
    """UsageError if any of paths has a file name longer than its file system allows."""
    for path in paths:
        directory = os.path.dirname(os.path.abspath(path))
        limit = _name_max(directory)
        name = os.path.basename(path)
        if len(os.fsencode(name)) > limit:
            raise UsageError(f"{option} {given!r}: the file name {name[:40]!r}... is "
                             f"{len(os.fsencode(name))} bytes, more than the {limit} this "
                             f"file system allows; give a shorter name (nothing was done)")


def check_model_output(path, option="--save"):
    """UsageError unless the model, its run summary and their interrupted twins can all be
    written; returns the model file's name."""
    target = model_file(path)
    if os.fspath(path).endswith(os.sep) or os.path.isdir(path) or os.path.isdir(target):
        shown = target if os.path.isdir(target) and not os.path.isdir(path) else path
        raise UsageError(f"{option} {path!r}: {shown!r} is a directory; give a file name, "
                         f"e.g. {os.path.join(path, 'model.npz')!r} (nothing was done)")
    twin = interrupted_name(target)
    _check_names([target, labels.sidecar_path(target), twin, labels.sidecar_path(twin)],
                 option, path)
    for name in (labels.sidecar_path(target), twin, labels.sidecar_path(twin)):
        if os.path.isdir(name):
            raise UsageError(f"{option} {path!r}: {name!r}, which train also writes, is a "
                             f"directory; move it or save elsewhere (nothing was done)")
    check_writable(target, option)
    return target


def check_not_inputs(saving, plot, inputs):
    """UsageError when a file train writes (the model, its summary, their interrupted
    twins; the plot and its twin) is one of the files it reads."""
    for option, path in (("--save", saving), ("--plot", plot)):
        if path is not None:
            written = [path, interrupted_name(path)]
            if option == "--save":
                written += [labels.sidecar_path(p) for p in written]
            check_not_an_input(written, option, inputs)


def plot_formats():
    """The file formats --plot can write: matplotlib's own list when it is installed."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return PLOT_FORMATS
    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_plot_output(path, option="--plot"):
    """UsageError unless path can be written and names a format the plot can be saved in."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    formats = plot_formats()
    if ext and ext not in formats:
        raise UsageError(f"{option} {path!r}: matplotlib cannot write .{ext} files; end the "
                         f"name in one of .{', .'.join(formats)} (nothing was done)")
    if os.fspath(path).endswith(os.sep) or os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory; give a file name, e.g. "
                         f"{os.path.join(path, 'curves.png')!r} (nothing was done)")
    _check_names([path, interrupted_name(path)], option, path)
    check_writable(path, option)


def save_model(model, path, summary):
    """Save model and its run summary; returns the model's path. A failure after training
    never loses the model: if it cannot go to path it goes to a temporary file, and the
    Failure (exit 1) says truthfully what was written where."""
    try:
        saved = model.save(path)
    except (OSError, ValueError) as exc:
        rescue = _rescue(model, summary)
        raise Failure(f"could not save the model to {model_file(path)!r} ("
                      f"{getattr(exc, 'strerror', None) or exc}); it was saved to "
                      f"{rescue!r} instead") from None
    try:
        labels.write_sidecar(saved, summary)
    except (OSError, ValueError) as exc:
        raise Failure(f"the model was saved to {saved!r}, but its run summary could not be "
                      f"written to {labels.sidecar_path(saved)!r} "
                      f"({getattr(exc, 'strerror', None) or exc})") from None
    return saved


def _rescue(model, summary):
    """Save to a new temporary file (its summary beside it, if that can be written)."""
    fd, rescue = tempfile.mkstemp(prefix="fastmlp-unsaved-", suffix=".npz")
    os.close(fd)
    try:
        rescue = model.save(rescue)
    except BaseException:
        os.unlink(rescue)
        raise
    try:
        labels.write_sidecar(rescue, summary)
    except (OSError, ValueError):
        pass  # the model is what matters; its summary is a convenience
    return rescue


def write_plot(history, path, saved):
    """history.plot(path); a failure after training is a Failure naming what was kept."""
    try:
        history.plot(path)
    except (OSError, ValueError, RuntimeError) as exc:
        kept = f"the model was saved to {saved!r}" if saved else "no model was saved"
        raise Failure(f"could not write the plot {os.fspath(path)!r} ({exc}); {kept}") \
            from None
    return os.fspath(path)


def write_run(args, saving, model, history, summary, interrupted):
    """Write what `fastmlp train` keeps: the model with its summary (--save) and the plot
    (--plot); returns their paths, None for each not written. An interrupted run never
    replaces an existing --save or --plot, nor an earlier interrupted run's files: a model
    with at least one whole epoch goes beside it, named so (model.interrupted.npz, or
    model.interrupted-2.npz and on where that is taken)."""
    keep = not interrupted or history.epochs >= 1
    saved = plotted = None
    if saving and keep:
        saved = save_model(model, unused_interrupted_name(saving, model=True) if interrupted
                           else args.save, summary)
    if args.plot and keep:
        plotted = write_plot(history, unused_interrupted_name(args.plot) if interrupted
                             else args.plot, saved)
    return saved, plotted


def kept(saving, record):
    """What an interrupted run wrote, in words."""
    if record["model"]:
        return (f"the model so far was saved to {record['model']!r} ({saving!r} was left "
                f"as it was)")
    if saving:
        return f"nothing was saved (no whole epoch trained; {saving!r} was left as it was)"
    return "nothing was saved (no --save)"
