"""The argument parser of every subcommand, and the argument types that check values."""
import argparse
import math

from ..bench.workloads import WORKLOADS

# dataset -> (layers, optimizer, lr, epochs, batch size). xor and abs use 8 hidden units, not
# the seeds' 2: with 2, about half of all seeds start with a dead relu and never fit (see
# tests/test_examples.py); `--layers 2:relu,1:identity --seed 1` runs the seeds' net.
DEFAULTS = {
    "digits": ("128:relu,10:softmax", "adam", 1e-3, 30, 32),
    "xor": ("8:relu,8:relu,1:sigmoid", "adam", 0.05, 300, 4),
    "x2": ("8:relu,8:relu,1:identity", "adam", 0.1, 2000, 100),
    "abs": ("8:relu,1:identity", "adam", 0.05, 2000, 32),
    "mnist": ("256:relu,10:softmax", "adam", 1e-3, 10, 128),
    "fashion": ("256:relu,10:softmax", "adam", 1e-3, 10, 128),
}
#: --data FILE: a hidden layer of this width, then the output layer the targets need.
TABLE_DEFAULTS = (64, "adam", 1e-3, 50, 32)
#: Held out of --data FILE when neither --test nor --test-split is given.
DEFAULT_TEST_SPLIT = 0.2
SEED_LIMIT = 2**63


class OneLineParser(argparse.ArgumentParser):
    """Bad options: one line on stderr, exit status 2, no usage dump, no traceback."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_layers(text):
    """'128:relu,10:softmax' -> [(128, 'relu'), (10, 'softmax')]."""
    layers = []
    for part in text.split(","):
        size, sep, activation = part.strip().partition(":")
        size = size.strip()
        if sep and size.lstrip("+-").isdigit() and int(size) < 1:
            raise argparse.ArgumentTypeError(
                f"bad layer {part.strip()!r}: a layer needs at least 1 unit")
        if not sep or not size.isdigit() or not activation.strip():
            raise argparse.ArgumentTypeError(
                f"bad layer {part.strip()!r}: write layers as SIZE:ACTIVATION separated by "
                f"commas, e.g. 128:relu,10:softmax")
        layers.append((int(size), activation.strip()))
    return layers


def seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {text} is out of range: seeds are integers in "
                                         f"[0, 2**63)")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be an integer >= 1")
    return value


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid fraction {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a fraction in [0, 1)")
    return value


def _json_flag(parser):
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of text")


def _add_train(sub):
    train = sub.add_parser(
        "train", help="train an MLP on a built-in dataset or a table file",
        description="Train an MLP and report held-out metrics. Data: --dataset NAME, or "
                    "--data FILE --target COLUMN (CSV, TSV, Parquet, .npy, .npz).")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=sorted(DEFAULTS), default=None,
                        help="a built-in dataset (default: digits)")
    source.add_argument("--data", metavar="FILE", help="train on a table file")
    train.add_argument("--target", metavar="COLUMN",
                       help="with --data: the target column (.npy: a column index; .npz: "
                            "the name of the target array)")
    train.add_argument("--data-dir", metavar="DIR",
                       help="mnist/fashion: the directory holding the IDX files")
    train.add_argument("--download", action="store_true",
                       help="mnist/fashion: download missing files into the cache")
    held = train.add_mutually_exclusive_group()
    held.add_argument("--test", metavar="FILE", help="held-out data (same columns as --data)")
    held.add_argument("--test-split", metavar="F", type=fraction, default=None,
                      help=f"hold out this fraction of the training data (default: the "
                           f"dataset's test split; {DEFAULT_TEST_SPLIT} of --data; 0: none)")
    train.add_argument("--task", choices=["auto", "classify", "regress"], default="auto",
                       help="--data: classification or regression (auto: classify unless "
                            "the target holds floats)")
    train.add_argument("--layers", type=parse_layers, default=None,
                       help="e.g. 128:relu,10:softmax (default depends on the data)")
    train.add_argument("--loss", default=None, help="mse, binary_cross_entropy, cross_entropy")
    train.add_argument("--optimizer", default=None, help="sgd, adam or adamw")
    train.add_argument("--lr", type=float, default=None,
                       help="learning rate (default depends on the data: 0.001 for "
                            "digits, mnist, fashion and --data files)")
    train.add_argument("--schedule", metavar="SPEC", default=None,
                       help="learning-rate schedule scaling --lr: NAME[:KEY=VALUE,...], "
                            "e.g. cosine, step:step_size=10,gamma=0.5, exponential:gamma=0.95, "
                            "plateau:patience=5")
    train.add_argument("--epochs", type=int, default=None,
                       help="passes over the training data (default depends on the data)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="rows per training step (default depends on the data)")
    train.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the weights")
    train.add_argument("--validation-split", metavar="F", type=fraction, default=None,
                       help="report validation loss on this fraction of the training data "
                            "(default 0.1 with --early-stopping)")
    train.add_argument("--early-stopping", action="store_true",
                       help="stop when the validation loss stops improving")
    train.add_argument("--patience", type=positive_int, default=None,
                       help="epochs without improvement before --early-stopping stops")
    train.add_argument("--seed", type=seed, default=0, help="an integer in [0, 2**63)")
    train.add_argument("--dtype", default="float32",
                       help="float32 (default, faster) or float64 (for checking precision)")
    train.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="cpu (default) or cuda (an NVIDIA GPU; needs fastmlp[cuda])")
    train.add_argument("--save", metavar="PATH", default=None, help="write the model (.npz)")
    train.add_argument("--plot", metavar="PNG", default=None,
                       help="write the training curves (loss, gradient norms, ...)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _json_flag(train)


def build_parser():
    parser = OneLineParser(prog="fastmlp", description="fastmlp: train, use and inspect MLPs.")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser, metavar="COMMAND")
    _add_train(sub)

    predict = sub.add_parser("predict", help="predict with a saved model",
                             description="Write one prediction per row of DATA: class labels "
                                         "for classifiers (--proba: probabilities), values "
                                         "for regressors.")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("data", metavar="DATA", help="CSV, TSV, Parquet, .npy or .npz")
    predict.add_argument("--out", metavar="FILE", help=".csv or .npy (default: CSV on stdout)")
    predict.add_argument("--proba", action="store_true", help="class probabilities")
    predict.add_argument("--target", metavar="COLUMN",
                         help="a column of DATA to leave out (e.g. the labels)")
    _json_flag(predict)

    evaluate = sub.add_parser("evaluate", help="loss and accuracy (or R²) on labelled data",
                              description="Loss and accuracy (classifiers) or R² "
                                          "(regressors) on DATA --target COLUMN, or on a "
                                          "split of --dataset mnist|fashion.")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("data", metavar="DATA", nargs="?",
                          help="CSV, TSV, Parquet, .npy or .npz holding the target column")
    evaluate.add_argument("--target", metavar="COLUMN", help="the column of true values")
    evaluate.add_argument("--dataset", choices=["mnist", "fashion"],
                          help="instead of DATA: MNIST or Fashion-MNIST's --split")
    evaluate.add_argument("--split", choices=["train", "test"], default="test")
    evaluate.add_argument("--data-dir", metavar="DIR", help="where the IDX files are")
    _json_flag(evaluate)

    export = sub.add_parser("export", help="write a model as ONNX or a PyTorch program")
    export.add_argument("model", metavar="MODEL")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--onnx", metavar="FILE", help="ONNX file (needs fastmlp[onnx])")
    fmt.add_argument("--torch", metavar="FILE",
                     help="torch.export program, .pt2 (load: torch.export.load(FILE).module())")
    _json_flag(export)

    info = sub.add_parser("info", help="layers, parameters, FLOPs and training summary")
    info.add_argument("model", metavar="MODEL")
    info.add_argument("--batch-size", type=positive_int, default=None,
                      help="batch size for the FLOPs per step (default: the one it was "
                           "trained with, else 32)")
    _json_flag(info)

    download = sub.add_parser("download", help="download MNIST or Fashion-MNIST")
    download.add_argument("variant", choices=["mnist", "fashion"])
    download.add_argument("--dir", metavar="DIR", help="where to put the files "
                                                       "(default: the user cache)")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    _json_flag(download)

    bench = sub.add_parser("bench", help="time the benchmark workloads against PyTorch/JAX")
    bench.add_argument("--workload", action="append", choices=list(WORKLOADS),
                       help="run only this workload (repeatable; default: all of them)")
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.add_argument("--seconds", type=positive_float, default=1.0,
                       help="minimum time per sample (> 0)")
    bench.add_argument("--repeats", type=positive_int, default=3,
                       help="samples per figure, best kept (>= 1)")
    bench.add_argument("--no-peers", action="store_true", help="time fastmlp only")
    bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    bench.add_argument("--same-process", action="store_true",
                       help="time every library in this one process (faster, but their "
                            "thread pools slow each other down) instead of a fresh "
                            "process per library and round")
    bench.add_argument("--first-result", action="store_true",
                       help="add the cold-start rows: the first result of a new script in "
                            "a fresh process, with empty and with warm kernel caches")
    bench.add_argument("--data-dir", metavar="DIR",
                       help="where the Fashion-MNIST files are for --workload fashion "
                            "(default: the user cache that `fastmlp download fashion` fills)")
    return parser


def option_strings(parser):
    """(options that take exactly one value, all options), across subcommands."""
    takes_value, every = set(), set()
    for action in parser._actions:
        every.update(action.option_strings)
        if action.option_strings and action.nargs is None and action.const is None:
            takes_value.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child_value, child_every = option_strings(child)
                takes_value |= child_value
                every |= child_every
    return takes_value, every


def join_dash_values(argv, parser):
    """`--layers -5:relu` -> `--layers=-5:relu`: argparse reads a value that starts with '-'
    (and is not a plain negative number) as an option, and would only say "expected one
    argument"; joined, the value reaches its type check, which says what is wrong. A value
    that is itself an option (`--save --quiet`) is left alone, for argparse to refuse."""
    takes_value, every = option_strings(parser)
    out = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value and i + 1 < len(argv):
            value = argv[i + 1]
            if value.startswith("-") and value != "--" and value.split("=")[0] not in every:
                out.append(f"{arg}={value}")
                i += 2
                continue
        out.append(arg)
        i += 1
    return out
