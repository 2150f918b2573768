"""`fastmlp train`: data in, a trained model, held-out metrics, a saved model and a plot out."""
import inspect
import os
import sys
import warnings

import numpy as np

from . import labels
from ..fit import scores
from ..inputs.labels import codes_for, encode
from . import outputs
from .checks import check_features, choose_task, nonfinite_outputs
from .common import Failure, Interrupts, UsageError, by_name, emit, load_table
from ..core.interrupts import DeferredInterrupts
from .parser import DEFAULT_TEST_SPLIT, DEFAULTS, TABLE_DEFAULTS, parse_layers
from ..inputs.split import train_test_split as fast_split


def _split(n, fraction, seed, stratify, salt):
    """(train rows, held rows): a seeded split, stratified by class where every class has two
    rows. Seeds up to 2**63 (and the salt that tells two splits apart) map onto the 32-bit
    range scikit-learn takes."""
    if stratify is not None and np.bincount(stratify).min(initial=0) < 2:
        stratify = None
    state = int(np.random.default_rng([seed, salt]).integers(0, 2**32))
    split = fast_split(n, fraction, state, stratify)  # scikit-learn's, without its import
    if split is not None:
        return split
    from sklearn.model_selection import train_test_split
    try:
        return train_test_split(np.arange(n), test_size=fraction, stratify=stratify,
                                random_state=state)
    except ValueError as exc:  # e.g. a fraction that leaves no row on one side
        raise UsageError(f"cannot hold out {fraction} of {n} rows: {exc}") from None


def load_data(args):
    """(name, X, y, X_test or None, y_test, defaults, fraction to hold out, feature names or
    None) for the data."""
    from ..datasets import DATASETS, load_mnist
    if args.data is None and args.target is not None:
        raise UsageError("--target goes with --data FILE")
    if args.data is not None:
        if args.target is None:
            raise UsageError("--data needs --target COLUMN: the column to predict")
        X, y, names = load_table(args.data, args.target)
        name, defaults = os.path.basename(args.data), None
        X_test = y_test = None
        if args.test is not None:
            X_test, y_test, test_names = load_table(args.test, args.target)
            try:  # the --test columns by name, as predict and evaluate read them
                X_test = by_name(X_test, test_names, names, f"--test {args.test!r}")
            except Failure as exc:
                raise UsageError(f"{exc} (nothing was trained)") from None
        split = DEFAULT_TEST_SPLIT if args.test_split is None and args.test is None \
            else args.test_split
        return name, X, y, X_test, y_test, defaults, split, names
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
        return name, X, y, X_test, y_test, DEFAULTS[name], args.test_split, None
    X, y = DATASETS[name]()
    # digits is held out by a quarter; the toy sets are their own test (they are the seeds').
    split = args.test_split if args.test_split is not None else (
        0.25 if name == "digits" else 0)
    return name, X, y, None, None, DEFAULTS[name], split, None


#: Short names --schedule also takes (the class names work too, in any case).
SCHEDULE_ALIASES = {"step": "stepdecay", "plateau": "reduceonplateau",
                    "invscaling": "inversescaling"}


def make_schedule(spec, epochs):
    """--schedule NAME[:KEY=VALUE,...] -> a fastmlp.schedules schedule, e.g. `cosine`,
    `step:step_size=10,gamma=0.5`, `exponential:gamma=0.95`, `plateau:patience=5`. It scales
    the optimizer's --lr. NAME matches a schedule class case-insensitively, ignoring `_` and
    `-`; a schedule that needs its length (Cosine) is given --epochs unless the spec says."""
    from ..core import schedules
    name, _, rest = spec.partition(":")
    found = {n.lower(): cls for n, cls in vars(schedules).items()
             if isinstance(cls, type) and issubclass(cls, schedules.Schedule)
             and cls is not schedules.Schedule}
    key = name.lower().replace("_", "").replace("-", "")
    factory = found.get(SCHEDULE_ALIASES.get(key, key))
    if factory is None:
        raise UsageError(f"--schedule {spec!r}: unknown schedule {name!r}; choose one of "
                         f"{', '.join(sorted(found) + sorted(SCHEDULE_ALIASES))}")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--schedule {spec!r}: write options as KEY=VALUE")
        kwargs[key.strip()] = _value(value.strip())
    accepted = inspect.signature(factory).parameters
    if "total_epochs" in accepted and "total_epochs" not in kwargs \
            and "total_steps" not in kwargs:
        kwargs["total_epochs"] = epochs
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--schedule {spec!r}: {exc}") from None


def _value(text):
    """An option value: an int, else a float, else the text (e.g. counter=samples)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fit_extras(model, args, validation, schedule):
    """Keyword arguments for fit beyond the basics."""
    extras = {}
    if validation is not None:
        extras["validation_data"] = validation
    if schedule is not None:
        extras["schedule"] = schedule
    if args.patience is not None and not args.early_stopping:
        raise UsageError("--patience goes with --early-stopping (without it nothing stops "
                         "early); add --early-stopping or leave --patience out")
    if args.early_stopping:
        extras["early_stopping"] = args.early_stopping
        if args.patience is not None:
            extras["patience"] = args.patience
    return extras


def _metrics(model, X, T, classes):
    """{'loss', 'accuracy'} for classification, {'loss', 'r2'} for regression."""
    if classes is not None:
        return model.evaluate(X, T)
    return {"loss": float(model.loss(X, T)), "r2": scores.r2(T, model.forward(X))}


class Rows:
    """Feature rows and their targets: class codes for a classification (into `classes`),
    the target values for a regression."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def take(self, index):
        return Rows(self.X[index], self.y[index])

    def __len__(self):
        return len(self.X)


def _prepare(args):
    """(name, training Rows, held-out Rows or None, classes or None, defaults, why the
    task was chosen or None, feature names or None)."""
    name, X, y, X_test, y_test, defaults, split, names = load_data(args)
    source = repr(args.data) if args.data else f"--dataset {name}"
    if len(X) == 0:
        raise UsageError(f"{source} has no data rows: nothing to train on")
    check_features(X, repr(args.data or name))
    if X_test is not None:
        check_features(X_test, f"--test {args.test!r}", X.shape[1])
    classes = None
    if args.data is None and args.task != "auto":
        raise UsageError(f"--task goes with --data FILE: --dataset {name} has its own task "
                         f"(its default --layers end in the output it needs)")
    classify, why = choose_task(y, args.task)
    if args.data is None:
        why = None  # a built-in dataset's task is no choice worth a line
    if classify:
        # Labels -> codes 0..k-1 (see labels.py for why fit gets float targets from them).
        classes, y = encode(y)
        bad = [c for c in np.asarray(classes).tolist() if isinstance(c, float)
               and not np.isfinite(c)]
        if bad:  # a model file keeps its labels as JSON, which has no NaN or infinity
            raise UsageError(f"the target of {source} holds the label(s) {bad[:3]}, which a "
                             f"model file cannot keep; drop or replace those rows")
        if len(classes) < 2:
            only = np.asarray(classes)[:1].tolist()[0]
            raise UsageError(
                f"the target of {source} holds one class ({only!r}) in every row: a "
                f"classifier needs at least two" + (
                    "; for numbers to predict use --task regress" if args.data else ""))
        if y_test is not None:
            try:
                y_test = codes_for(classes, y_test, repr(args.test or name))
            except ValueError as exc:
                raise Failure(str(exc)) from None
    elif np.asarray(y).dtype.kind not in "biuf":
        raise UsageError(f"regression needs numeric targets, but the target holds "
                         f"{np.asarray(y).dtype} values; use --task classify")
    rows = Rows(X, y)
    test = None if X_test is None else Rows(X_test, y_test)
    if test is None and split:
        kept, held = _split(len(rows), split, args.seed, y if classes is not None else None,
                            salt=0)
        rows, test = rows.take(kept), rows.take(held)
    return name, rows, test, classes, defaults, why, names


def _build_model(args, n_inputs, classes, defaults):
    from ..model import MLP
    from ..core.optimizers import OPTIMIZERS
    if defaults is None:  # --data: a hidden layer, then the output the targets need
        width, opt_name, lr, epochs, batch = TABLE_DEFAULTS
        out = "1:identity" if classes is None else f"{len(classes)}:softmax"
        defaults = (f"{width}:relu,{out}", opt_name, lr, epochs, batch)
    layers_text, opt_name, lr, epochs, batch = defaults
    layers = args.layers or parse_layers(layers_text)
    opt_name = (args.optimizer or opt_name).lower()
    if opt_name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {opt_name!r}; choose one of "
                         f"{', '.join(sorted(OPTIMIZERS))}")
    lr = lr if args.lr is None else args.lr
    batch = batch if args.batch_size is None else args.batch_size
    if args.device == "cpu":
        _check_memory(n_inputs, layers, args.dtype, batch)
    try:
        model = MLP(n_inputs, layers, loss=args.loss, optimizer=OPTIMIZERS[opt_name](lr=lr),
                    l2=args.l2, dtype=args.dtype, seed=args.seed, device=args.device)
    except MemoryError as exc:
        raise UsageError(f"--layers {_layers_text(layers)}: the network does not fit in "
                         f"memory ({exc}); use fewer or smaller layers") from None
    if classes is not None:
        n_out, k = layers[-1][0], len(classes)
        if not (n_out == k or (n_out == 1 and k <= 2)):
            raise UsageError(f"the data has {k} classes but the output layer has {n_out} "
                             f"unit(s); end --layers with {k}:softmax"
                             + (" (or 1:sigmoid)" if k == 2 else ""))
    epochs = epochs if args.epochs is None else args.epochs
    schedule = None if args.schedule is None else make_schedule(args.schedule, epochs)
    return model, epochs, batch, schedule


def _check_memory(n_inputs, layers, dtype, batch):
    """A usage error at once, not after the model's buffers were allocated and filled (half a
    minute and 11 GB for a 10^8-unit layer), when the buffers a fit needs exceed the memory
    available now."""
    from .. import config
    from ..core.cores import available_memory
    from ..core.spec import NetworkSpec
    from ..core.workspace import Workspace
    available = available_memory()
    try:
        spec, dtype = NetworkSpec(n_inputs, layers), np.dtype(dtype)
    except (TypeError, ValueError):
        return  # MLP says what is wrong with the layers or the dtype
    needed = Workspace.nbytes(spec, dtype, max(batch, config.MIN_WORKSPACE_ROWS))
    if available is not None and needed > available:
        raise UsageError(f"training buffers for --layers {_layers_text(layers)} and "
                         f"--batch-size {batch} need {needed / 2**30:,.1f} GiB and do not fit "
                         f"in memory ({available / 2**30:,.1f} GiB available); use smaller "
                         f"layers or batches (nothing was trained)")


def _layers_text(layers):
    return ",".join(f"{size}:{activation}" for size, activation in layers)


def train(args):
    # Every name written after training is checked first (a usage error, nothing done).
    saving = None if args.save is None else outputs.check_model_output(args.save)
    if args.plot is not None:
        outputs.check_plot_output(args.plot)
        from ..fit.plot import _matplotlib
        _matplotlib()  # an ImportError naming the extra, before the training it would follow
    outputs.check_not_inputs(saving, args.plot, [args.data, args.test])
    # Under `mpiexec -n N fastmlp train ...` every rank trains its share of each batch; only
    # rank 0 writes the model, the plot and the report. Ctrl-C is then counted, not raised,
    # for the whole command, and the ranks stop together (core/interrupts.py).
    from ..cpu.mpi import launched, launched_comm
    with (DeferredInterrupts() if launched() else Interrupts()) as presses, \
            warnings.catch_warnings():
        # fit's warning on Ctrl-C names a source line; the CLI says what it kept instead.
        warnings.filterwarnings("ignore", "fastmlp: training interrupted", RuntimeWarning)
        return _train(args, saving, launched_comm(), presses)


def _train(args, saving, comm, presses):
    name, rows, test, classes, defaults, why, names = _prepare(args)
    model, epochs, batch, schedule = _build_model(args, rows.X.shape[1], classes, defaults)

    def fit_targets(part):  # float targets from class codes, or the values
        return part.y if classes is None else labels.targets(part.y, model)

    validation = None
    if args.validation_split or args.early_stopping:
        kept, held = _split(len(rows), args.validation_split or 0.1, args.seed,
                            rows.y if classes is not None else None, salt=1)
        rows, checked = rows.take(kept), rows.take(held)
        validation = (checked.X, fit_targets(checked))
    try:
        history = model.fit(rows.X, fit_targets(rows), epochs=epochs, batch_size=batch,
                            progress=not args.quiet, comm=comm,
                            **_fit_extras(model, args, validation, schedule))
    except MemoryError as exc:  # fit sizes its buffers before the first step
        raise UsageError(f"training buffers for --layers {_layers_text(model.layers)} and "
                         f"--batch-size {batch} do not fit in memory ({exc}); use smaller "
                         f"layers or batches (nothing was trained)") from None
    interrupted = bool(history.interrupted)
    if comm is not None and comm.Get_rank() != 0:
        return 130 if interrupted else 0  # the ranks stopped together: rank 0's status
    if classes is not None:
        model.classes_ = classes  # saved with the model; fit saw float targets, not labels
    if names is not None:  # saved too: predict and evaluate read columns by these names
        model.feature_names_in_ = np.array(names, dtype=object)
    scored = rows if test is None else test
    result = problem = None
    try:
        result = _metrics(model, scored.X, fit_targets(scored), classes)
        problem = nonfinite_outputs(model, scored.X,
                                    "the held-out data" if test else "the data")
    except KeyboardInterrupt:  # after training: the scores are skipped, never the model
        interrupted = True
    # From here a first Ctrl-C is noted, not raised: the files are finished whole (a
    # second press still stops at once).
    with presses.deferred():
        if problem is not None:  # the model is still saved: say so, with the metrics as null
            print(f"fastmlp train: warning: {problem}", file=sys.stderr)
        summary = {"data": name, "epochs": int(history.epochs),
                   "seconds": float(np.sum(history.seconds)),
                   "compile_seconds": float(history.compile_seconds),
                   "final_loss": float(history.loss[-1]) if history.epochs else None,
                   "training" if test is None else "held_out": result,
                   "rows": len(rows), "test_rows": 0 if test is None else len(test),
                   "batch_size": batch,
                   "validation_rows": 0 if validation is None else len(validation[0]),
                   "interrupted": interrupted}
        if why is not None:
            summary["task"] = f"{'classification' if classes is not None else 'regression'} " \
                              f"(--task auto: {why})"
        if history.stopped_early:
            summary["stopped_early"] = True
        if len(history.lr):
            summary["final_lr"] = float(history.lr[-1])
        record = {"command": "train", **summary}
        record["model"], record["plot"] = outputs.write_run(args, saving, model, history,
                                                            summary, interrupted)
    emit(args, _report(record, test is not None), record)
    if presses.pending and not interrupted:
        print("fastmlp train: interrupted while writing; what is listed above was written "
              "whole", file=sys.stderr)
        return 130
    if interrupted:
        print(f"fastmlp train: interrupted after {history.epochs} whole epoch(s); "
              f"{outputs.kept(saving, record)}", file=sys.stderr)
        return 130
    return 0


#: The summary line names the time spent compiling kernels from this many seconds up.
SHOW_COMPILE_SECONDS = 0.5


def _report(record, held_out):
    prefix = "held-out " if held_out else ""
    metrics = record["held_out" if held_out else "training"]
    compiling = record.get("compile_seconds", 0.0)
    compiling = (f" (+{compiling:.1f} s compiling kernels, first run only)"
                 if compiling >= SHOW_COMPILE_SECONDS else "")
    text = f"{record['data']}: {record['epochs']} epochs in {record['seconds']:.2f} s{compiling}"
    if metrics is None:  # Ctrl-C while scoring
        metrics = {}
        text += f", {prefix}scores skipped"
    else:
        text += f", {prefix}loss {metrics['loss']:.4g}"
    if "accuracy" in metrics:
        text += f", {prefix}accuracy {100 * metrics['accuracy']:.2f}%"
    if metrics.get("r2") is not None:
        text += f", {prefix}R² {metrics['r2']:.4f}"
    if held_out:
        text += f" ({record['test_rows']:,} held-out rows)"
    if record.get("task"):
        text += f"\ntask: {record['task']}"
    if record.get("stopped_early"):
        text += "; stopped early"
    if record.get("interrupted"):
        text += "; interrupted (Ctrl-C)"
    if record["model"]:
        what = "interrupted model" if record.get("interrupted") else "model"
        text += f"\n{what} saved to {record['model']} (run summary in " \
                f"{labels.sidecar_path(record['model'])})"
    if record["plot"]:
        text += f"\ntraining curves written to {record['plot']}"
    return text
