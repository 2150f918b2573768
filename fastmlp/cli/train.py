"""`fastmlp train`: data in, a trained model, held-out metrics, a saved model and a plot out."""
import inspect
import os
import tempfile

import numpy as np

from . import labels
from .common import Failure, UsageError, check_writable, emit, load_table
from .parser import DEFAULT_TEST_SPLIT, DEFAULTS, TABLE_DEFAULTS, parse_layers


def _split(n, fraction, seed, stratify, salt):
    """(train rows, held rows): a seeded split, stratified by class where every class has two
    rows. Seeds up to 2**63 (and the salt that tells two splits apart) map onto the 32-bit
    range scikit-learn takes."""
    from sklearn.model_selection import train_test_split
    if stratify is not None and np.bincount(stratify).min(initial=0) < 2:
        stratify = None
    state = int(np.random.default_rng([seed, salt]).integers(0, 2**32))
    try:
        return train_test_split(np.arange(n), test_size=fraction, stratify=stratify,
                                random_state=state)
    except ValueError as exc:  # e.g. a fraction that leaves no row on one side
        raise UsageError(f"cannot hold out {fraction} of {n} rows: {exc}") from None


def load_data(args):
    """(name, X, y, X_test or None, y_test, defaults, held_out) for the chosen data."""
    from ..datasets import DATASETS, load_mnist
    if args.data is None and args.target is not None:
        raise UsageError("--target goes with --data FILE")
    if args.data is not None:
        if args.target is None:
            raise UsageError("--data needs --target COLUMN: the column to predict")
        X, y = load_table(args.data, args.target)
        name, defaults = os.path.basename(args.data), None
        X_test = y_test = None
        if args.test is not None:
            X_test, y_test = load_table(args.test, args.target)
        split = DEFAULT_TEST_SPLIT if args.test_split is None and args.test is None \
            else args.test_split
        return name, X, y, X_test, y_test, defaults, split
    name = args.dataset or "digits"
    if args.test is not None:
        raise UsageError("--test FILE goes with --data FILE; with --dataset use --test-split")
    if (args.data_dir or args.download) and name not in ("mnist", "fashion"):
        raise UsageError("--data-dir and --download are for --dataset mnist or fashion")
    if name in ("mnist", "fashion"):
        try:
            X, y = load_mnist("train", name, path=args.data_dir, download=args.download)
            X_test = y_test = None
            if args.test_split is None:
                X_test, y_test = load_mnist("test", name, path=args.data_dir,
                                            download=args.download)
        except ValueError as exc:
            raise Failure(str(exc)) from None
        return name, X, y, X_test, y_test, DEFAULTS[name], args.test_split
    X, y = DATASETS[name]()
    # digits is held out by a quarter; the toy sets are their own test (they are the seeds').
    split = args.test_split if args.test_split is not None else (
        0.25 if name == "digits" else 0)
    return name, X, y, None, None, DEFAULTS[name], split


def make_schedule(spec, lr):
    """--schedule NAME[:KEY=VALUE,...] -> fastmlp.schedules.<NAME>(KEY=VALUE, ...), given to
    the optimizer as its lr; a schedule with an `lr` parameter starts from --lr (or the
    dataset's default) unless the spec sets it. NAME matches case-insensitively, ignoring
    underscores (cosine matches Cosine)."""
    try:
        from .. import schedules
    except ImportError:
        raise UsageError("--schedule: this fastmlp has no fastmlp.schedules") from None
    name, _, rest = spec.partition(":")
    found = {n.lower().replace("_", ""): getattr(schedules, n) for n in dir(schedules)
             if not n.startswith("_") and callable(getattr(schedules, n))}
    factory = found.get(name.lower().replace("_", ""))
    if factory is None:
        raise UsageError(f"--schedule {spec!r}: unknown schedule {name!r}; choose one of "
                         f"{', '.join(sorted(found))}")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--schedule {spec!r}: write options as KEY=VALUE")
        kwargs[key.strip()] = _number(value.strip(), spec)
    try:
        if "lr" in inspect.signature(factory).parameters:
            kwargs.setdefault("lr", lr)
    except (TypeError, ValueError):  # no introspectable signature
        pass
    return factory(**kwargs)


def _number(text, spec):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise UsageError(f"--schedule {spec!r}: {text!r} is not a number")


def _fit_extras(model, args, validation):
    """Keyword arguments for fit beyond the basics. --early-stopping and --patience need a
    fit that takes them (checked, so an older fit gives a usage error, not a TypeError)."""
    accepted = inspect.signature(model.fit).parameters
    extras = {}
    if validation is not None:
        extras["validation_data"] = validation
    if args.early_stopping or args.patience is not None:
        if "early_stopping" not in accepted:
            raise UsageError("--early-stopping: this fastmlp's MLP.fit has no early_stopping")
        extras["early_stopping"] = args.early_stopping
        if args.patience is not None:
            extras["patience"] = args.patience
    return extras


def _metrics(model, X, T, codes, classes):
    """{'loss', 'accuracy'} for classification, {'loss', 'r2'} for regression."""
    result = {"loss": float(model.loss(X, T))}
    if classes is not None:
        result["accuracy"] = float(np.mean(labels.decide(model, X) == codes))
    else:
        y = np.asarray(T, dtype=np.float64).reshape(len(X), -1)
        pred = model.forward(X).astype(np.float64).reshape(len(X), -1)
        total = ((y - y.mean(axis=0)) ** 2).sum()
        result["r2"] = float(1 - ((y - pred) ** 2).sum() / total) if total > 0 else None
    return result


def _save(model, path, classes, summary):
    """Save; if that fails after training, put the model somewhere it can be found and say
    where (a Failure), so a long run is never lost to a bad path."""
    try:
        saved = model.save(path)
        labels.write_sidecar(saved, classes, summary)
        return saved
    except OSError as exc:
        fd, rescue = tempfile.mkstemp(prefix="fastmlp-unsaved-", suffix=".npz")
        os.close(fd)
        rescue = model.save(rescue)
        labels.write_sidecar(rescue, classes, summary)
        raise Failure(f"could not save the model to {path!r} ({exc.strerror or exc}); it was "
                      f"saved to {rescue!r} instead") from None


def train(args):
    from ..model import MLP
    from ..optimizers import OPTIMIZERS

    for path, option in ((args.save, "--save"), (args.plot, "--plot")):
        if path is not None:
            check_writable(path, option)
    if args.plot is not None:
        from ..plot import _matplotlib
        _matplotlib()  # an ImportError naming the extra, before the training it would follow
    name, X, y, X_test, y_test, defaults, split = load_data(args)
    classify = labels.is_classification(y, args.task)
    classes = None
    if classify:
        classes, codes = labels.encode(y)
    test_codes = None
    if X_test is None and split:
        rows, held = _split(len(X), split, args.seed, codes if classify else None, salt=0)
        X, X_test, y, y_test = X[rows], X[held], y[rows], y[held]
        if classify:
            codes, test_codes = codes[rows], codes[held]
    elif classify and X_test is not None:
        test_codes = labels.codes_for(classes, y_test, "--test")
    if defaults is None:  # --data: a hidden layer, then the output the targets need
        width, opt_name, lr, epochs, batch = TABLE_DEFAULTS
        out = f"{len(classes)}:softmax" if classify else (
            f"{1 if np.ndim(y) == 1 else np.shape(y)[1]}:identity")
        defaults = (f"{width}:relu,{out}", opt_name, lr, epochs, batch)
    layers_text, opt_name, lr, epochs, batch = defaults
    layers = args.layers or parse_layers(layers_text)
    opt_name = (args.optimizer or opt_name).lower()
    if opt_name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {opt_name!r}; choose one of "
                         f"{', '.join(sorted(OPTIMIZERS))}")
    lr = lr if args.lr is None else args.lr
    if args.schedule is not None:
        lr = make_schedule(args.schedule, lr)
    optimizer = OPTIMIZERS[opt_name](lr=lr)
    epochs = epochs if args.epochs is None else args.epochs
    batch = batch if args.batch_size is None else args.batch_size
    model = MLP(X.shape[1], layers, loss=args.loss, optimizer=optimizer, l2=args.l2,
                dtype=args.dtype, seed=args.seed, device=args.device)
    if classify:
        n_out = layers[-1][0]
        if (n_out == 1 and len(classes) > 2) or (n_out > 1 and n_out < len(classes)):
            raise UsageError(f"the data has {len(classes)} classes but the output layer has "
                             f"{n_out} unit(s); end --layers with {len(classes)}:softmax")
        T = labels.targets(codes, model)
        T_test = None if X_test is None else labels.targets(test_codes, model)
    else:
        T, T_test = y, y_test
    validation = None
    if args.validation_split or args.early_stopping:
        rows, held = _split(len(X), args.validation_split or 0.1, args.seed,
                            codes if classify else None, salt=1)
        validation = (X[held], T[held])
        X, T = X[rows], T[rows]
        if classify:
            codes = codes[rows]
    history = model.fit(X, T, epochs=epochs, batch_size=batch, progress=not args.quiet,
                        **_fit_extras(model, args, validation))
    held_out = X_test is not None
    if held_out:
        result = _metrics(model, X_test, T_test, test_codes if classify else None, classes)
    else:
        result = _metrics(model, X, T, codes if classify else None, classes)
    summary = {"data": name, "epochs": int(history.epochs),
               "seconds": float(np.sum(history.seconds)),
               "final_loss": float(history.loss[-1]) if history.epochs else None,
               "held_out" if held_out else "training": result,
               "rows": int(len(X)), "test_rows": int(len(X_test)) if held_out else 0,
               "validation_rows": 0 if validation is None else int(len(validation[0]))}
    if getattr(history, "stopped_early", False):
        summary["stopped_early"] = True
    record = {"command": "train", **summary, "model": None, "plot": None}
    if args.save:
        record["model"] = _save(model, args.save, classes, summary)
    if args.plot:
        history.plot(args.plot)
        record["plot"] = os.fspath(args.plot)
    emit(args, _report(record, held_out), record)
    return 0


def _report(record, held_out):
    prefix = "held-out " if held_out else ""
    metrics = record["held_out" if held_out else "training"]
    text = (f"{record['data']}: {record['epochs']} epochs in {record['seconds']:.2f} s, "
            f"{prefix}loss {metrics['loss']:.4g}")
    if "accuracy" in metrics:
        text += f", {prefix}accuracy {100 * metrics['accuracy']:.2f}%"
    if metrics.get("r2") is not None:
        text += f", {prefix}R² {metrics['r2']:.4f}"
    if held_out:
        text += f" ({record['test_rows']:,} held-out rows)"
    if record.get("stopped_early"):
        text += "; stopped early"
    if record["model"]:
        text += f"\nmodel saved to {record['model']} (labels and summary in " \
                f"{labels.sidecar_path(record['model'])})"
    if record["plot"]:
        text += f"\ntraining curves written to {record['plot']}"
    return text
