"""`fastmlp predict | evaluate | export | info | download | bench`."""
import os

import numpy as np

from . import labels
from ..inputs.labels import codes_for, plain
from .checks import nonfinite_outputs
from .common import (Failure, UsageError, by_name, check_not_an_input, check_writable, emit,
                     load_model, load_table, model_path, write_rows)


def _features(model, path, target):
    """The rows of DATA as the model's inputs (the --target column left out)."""
    try:
        X, _, names = load_table(path, target)
    except UsageError as exc:
        if target is not None or "not numeric" not in str(exc):
            raise
        raise UsageError(f"{exc}. If it holds the target column, leave that out with "
                         f"--target COLUMN.") from None
    try:
        X = by_name(X, names, model.feature_names_in_, repr(path))
    except Failure as exc:
        hint = " If one of them is the target, name it with --target." if target is None \
            else ""
        raise Failure(f"{exc}.{hint}") from None
    if X.shape[1] != model.n_inputs:
        hint = (" If one of them is the target, name it with --target."
                if X.shape[1] == model.n_inputs + 1 and target is None else "")
        raise Failure(f"{path!r} has {X.shape[1]} feature columns but the model takes "
                      f"{model.n_inputs}.{hint}")
    return X


def predict(args):
    if args.out is not None:
        check_writable(args.out, "--out")
        check_not_an_input([args.out], "--out", [args.data, model_path(args.model)])
        if not args.out.lower().endswith((".csv", ".npy")):
            raise UsageError(f"--out {args.out!r}: write predictions to a .csv or .npy file")
    model = load_model(args.model)
    classes = labels.model_classes(model)
    X = _features(model, args.data, args.target)
    problem = nonfinite_outputs(model, X, repr(args.data))
    if problem is not None:
        raise Failure(problem + " (nothing was written)")
    if args.proba:
        if classes is None:
            raise UsageError("--proba needs a classifier; this model's output is "
                             f"{model.layers[-1][1]!r} (a regressor)")
        values = labels.probabilities(model, X)
        header = [str(plain(c)) for c in classes]
    elif classes is not None:
        values = classes[labels.decide(model, X)]
        header = ["prediction"]
    else:
        values = model.predict(X)
        header = ["prediction"] if np.ndim(values) == 1 else [
            f"output_{k}" for k in range(values.shape[1])]
    if args.out is None and args.json:
        emit(args, "", {"command": "predict", "rows": len(X), "predictions": values})
        return 0
    write_rows(args.out, np.asarray(values), header)
    if args.out is not None:
        emit(args, f"{len(X):,} predictions written to {args.out}",
             {"command": "predict", "rows": len(X), "out": args.out})
    return 0


def _check_labelled(args):
    if (args.data is None) == (args.dataset is None):
        raise UsageError("give DATA --target COLUMN, or --dataset mnist|fashion")
    if args.data is not None and args.target is None:
        raise UsageError("DATA needs --target COLUMN: the column of true values")


def _labelled(args, model):
    """(X, y, a name for messages) from DATA --target COLUMN or --dataset, X's columns in
    the model's order."""
    if args.dataset is not None:
        from ..datasets import load_mnist
        try:
            X, y = load_mnist(args.split, args.dataset, path=args.data_dir)
        except ValueError as exc:
            raise Failure(str(exc)) from None
        return X, y, f"{args.dataset} {args.split}"
    X, y, names = load_table(args.data, args.target)
    return by_name(X, names, model.feature_names_in_, repr(args.data)), y, args.data


def evaluate(args):
    from .train import _metrics
    _check_labelled(args)
    model = load_model(args.model)
    classes = labels.model_classes(model)
    X, y, name = _labelled(args, model)
    if X.shape[1] != model.n_inputs:
        raise Failure(f"{name} has {X.shape[1]} features but the model takes "
                      f"{model.n_inputs}")
    codes = None
    if classes is not None:
        try:
            codes = codes_for(classes, y, name)
        except ValueError as exc:
            raise Failure(str(exc)) from None
        T = labels.targets(codes, model)
    else:
        T = y
    problem = nonfinite_outputs(model, X, name if args.dataset else repr(name))
    if problem is not None:
        raise Failure(problem)
    result = _metrics(model, X, T, classes)
    text = f"{name}: {len(X):,} rows, loss {result['loss']:.4g}"
    if "accuracy" in result:
        text += f", accuracy {100 * result['accuracy']:.2f}%"
    if result.get("r2") is not None:
        text += f", R² {result['r2']:.4f}"
    emit(args, text, dict(result, command="evaluate", rows=len(X)))
    return 0


#: File name endings that say which format a user meant, for a mismatch with the option.
ONNX_ENDINGS = (".onnx",)
TORCH_ENDINGS = (".pt2", ".pt", ".pth")


def export(args):
    from .. import export as exporters
    target = args.onnx or args.torch
    option = "--onnx" if args.onnx else "--torch"
    ending = os.path.splitext(target)[1].lower()
    if args.torch and ending in ONNX_ENDINGS:
        raise UsageError(f"--torch writes a torch.export program, but {target!r} is named "
                         f"as an ONNX file; use --onnx {target}, or a .pt2 name")
    if args.onnx and ending in TORCH_ENDINGS:
        raise UsageError(f"--onnx writes an ONNX file, but {target!r} is named as a PyTorch "
                         f"file; use --torch {target}, or a .onnx name")
    check_writable(target, option)
    check_not_an_input([target], option, [model_path(args.model)])
    model = load_model(args.model)
    if args.onnx:
        written = exporters.to_onnx(model, args.onnx)
        how = "onnxruntime.InferenceSession(path): input 'input', output 'output'"
    else:
        written = exporters.save_torch(model, args.torch)
        how = "torch.export.load(path).module()"
    text = f"wrote {written} (load with {how})"
    record = {"command": "export", "format": "onnx" if args.onnx else "torch", "out": written}
    classes = None if model.classes_ is None else [plain(c) for c in model.classes_]
    if classes is not None:
        # The file gives the output layer's values; the labels they stand for live here.
        where = "its metadata_props 'classes' (JSON)" if args.onnx else "no field of the file"
        shown = ", ".join(map(repr, classes[:20])) + (", ..." if len(classes) > 20 else "")
        text += (f"\nits outputs are the scores of the classes {shown}, in that order "
                 f"(kept in {where})")
        record["classes"] = classes
    emit(args, text, record)
    return 0


def info(args):
    from ..summary import summary
    model = load_model(args.model)
    path = model_path(args.model)  # `info m` reads m.npz, and its summary m.npz.json
    try:
        record = labels.read_sidecar(path)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    stale = record is not None and not labels.describes(record, path)
    classes = labels.model_classes(model)
    run = {} if stale else _run_summary(record, labels.sidecar_path(path))
    batch_size = args.batch_size or run.get("batch_size") or 32
    text = summary(model, batch_size)
    if classes is not None:
        shown = ", ".join(map(repr, [plain(c) for c in classes[:20]]))
        text += f"\nclasses ({len(classes)}): {shown}" + (", ..." if len(classes) > 20 else "")
    if run:
        metrics = run.get("held_out") or run.get("training") or {}
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        where = "held-out" if "held_out" in run else "training"
        parts = [f"{k} {100 * v:.2f}%" if k == "accuracy" else f"{k} {v:.4g}"
                 for k, v in metrics.items() if v is not None]
        text += (f"\ntrained on {run.get('data')}: {run.get('epochs')} epochs in "
                 f"{run.get('seconds', 0):.2f} s; {where} {', '.join(parts)}")
    elif stale:
        text += (f"\nno training summary: {labels.sidecar_path(path)!r} describes an earlier "
                 f"model saved at this path (the file was saved over since)")
    else:
        text += "\nno training summary (the model was not saved by `fastmlp train`)"
    n_params = sum(W.size + b.size for W, b in model.get_weights())
    emit(args, text, {
        "command": "info", "n_inputs": model.n_inputs,
        "layers": [list(layer) for layer in model.layers], "loss": model.loss_name,
        "dtype": model.dtype.name, "optimizer": repr(model.optimizer), "parameters": n_params,
        "flops_per_step": model.spec.flops_per_step(batch_size), "batch_size": batch_size,
        "classes": None if classes is None else [plain(c) for c in classes],
        "training": run or None})
    return 0


#: A batch size beyond this in a run summary is no batch fastmlp trained with.
MAX_BATCH_SIZE = 2**31


def _run_summary(record, path):
    """The summary in a run record (the .json beside a model), with values of the wrong
    type dropped: the file is the user's to edit, and `info` must not crash on it."""
    run = (record or {}).get("summary")
    if run is None:
        return {}
    if not isinstance(run, dict):
        raise Failure(f"{path!r}: its 'summary' is a {type(run).__name__}, not the record "
                      f"fastmlp train writes; delete or fix the file")
    kinds = {"data": str, "epochs": int, "seconds": (int, float), "batch_size": int,
             "held_out": dict, "training": dict}
    run = {k: v for k, v in run.items() if k not in kinds or (
        isinstance(v, kinds[k]) and not isinstance(v, bool))}
    size = run.get("batch_size")
    if size is not None and not 1 <= size <= MAX_BATCH_SIZE:
        del run["batch_size"]
    return run


def download(args):
    from ..datasets.mnist import cache_directory, download_mnist
    directory = args.dir or cache_directory(args.variant)
    paths = download_mnist(args.variant, directory, progress=not args.quiet)
    emit(args, f"{args.variant}: {len(paths)} files in {directory}",
         {"command": "download", "variant": args.variant, "directory": directory,
          "files": paths})
    return 0


def bench(args):
    from ..bench.run import main as run
    if args.json:
        check_writable(args.json, "--json")
    if args.device == "cuda":
        from ..cuda.device import require_cuda
        require_cuda()  # a RuntimeError saying what is missing, before any timing
    return run(args)


COMMANDS = {"predict": predict, "evaluate": evaluate, "export": export, "info": info,
            "download": download, "bench": bench}
