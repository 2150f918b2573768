"""`fastmlp train` (the main job): train an MLP on one of the worked examples."""
import argparse
import sys

from .workloads import WORKLOADS

# dataset -> (layers, optimizer, lr, epochs, batch size). xor and abs use 8 hidden units, not
# the seeds' 2: with 2, about half of all seeds start with a dead relu and never fit (see
# tests/test_examples.py); `--layers 2:relu,1:identity --seed 1` runs the seeds' net.
DEFAULTS = {
    "digits": ("128:relu,10:softmax", "adam", 1e-3, 30, 32),
    "xor": ("8:relu,8:relu,1:sigmoid", "adam", 0.05, 300, 4),
    "x2": ("8:relu,8:relu,1:identity", "adam", 0.1, 2000, 100),
    "abs": ("8:relu,1:identity", "adam", 0.05, 2000, 32),
}


class OneLineParser(argparse.ArgumentParser):
    """Bad options: one line on stderr, exit status 2, no usage dump, no traceback."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_layers(text):
    """'128:relu,10:softmax' -> [(128, 'relu'), (10, 'softmax')]."""
    layers = []
    for part in text.split(","):
        size, sep, activation = part.strip().partition(":")
        if not sep or not size.strip().isdigit() or not activation.strip():
            raise argparse.ArgumentTypeError(
                f"bad layer {part.strip()!r}: write layers as SIZE:ACTIVATION separated by "
                f"commas, e.g. 128:relu,10:softmax")
        layers.append((int(size), activation.strip()))
    return layers


def build_parser():
    parser = OneLineParser(prog="fastmlp", description=__doc__)
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    train = sub.add_parser("train", help="train an MLP on a worked example")
    train.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    train.add_argument("--layers", type=parse_layers, default=None,
                       help="e.g. 128:relu,10:softmax (default depends on the dataset)")
    train.add_argument("--loss", default=None, help="mse, binary_cross_entropy, cross_entropy")
    train.add_argument("--optimizer", default=None, help="sgd, adam or adamw")
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", default="float32")
    train.add_argument("--save", metavar="PATH", default=None)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    bench = sub.add_parser("bench", help="time the DESIGN.md workloads against PyTorch/JAX")
    bench.add_argument("--workload", action="append", choices=list(WORKLOADS),
                       help="run only this workload (repeatable; default: all four)")
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.add_argument("--seconds", type=float, default=1.0, help="minimum time per sample")
    bench.add_argument("--repeats", type=int, default=3, help="samples per figure (best kept)")
    bench.add_argument("--no-peers", action="store_true", help="time fastmlp only")
    bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    return parser


def train(args):
    from .datasets import DATASETS
    from .model import MLP
    from .optimizers import OPTIMIZERS

    layers_text, opt_name, lr, epochs, batch = DEFAULTS[args.dataset]
    layers = args.layers or parse_layers(layers_text)
    opt_name = (args.optimizer or opt_name).lower()
    if opt_name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {opt_name!r}; choose one of "
                         f"{', '.join(sorted(OPTIMIZERS))}")
    optimizer = OPTIMIZERS[opt_name](lr=lr if args.lr is None else args.lr)
    epochs = epochs if args.epochs is None else args.epochs
    batch = batch if args.batch_size is None else args.batch_size
    X, y = DATASETS[args.dataset]()
    model = MLP(X.shape[1], layers, loss=args.loss, optimizer=optimizer, dtype=args.dtype,
                seed=args.seed)
    if args.dataset == "digits":
        from sklearn.model_selection import train_test_split
        X, X_test, y, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                random_state=args.seed)
    else:
        X_test, y_test = X, y
    history = model.fit(X, y, epochs=epochs, batch_size=batch, progress=not args.quiet)
    result = model.evaluate(X_test, y_test)
    held = "held-out " if args.dataset == "digits" else ""
    summary = f"{args.dataset}: {len(history.loss)} epochs in {history.seconds.sum():.2f} s, " \
              f"{held}loss {result['loss']:.4g}"
    if "accuracy" in result:
        summary += f", {held}accuracy {100 * result['accuracy']:.2f}%"
    print(summary)
    if args.save:
        print(f"saved to {model.save(args.save)}")
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "bench":
            from .bench import main as bench
            return bench(args)
        return train(args)
    except (ValueError, TypeError, FloatingPointError) as exc:
        print(f"fastmlp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
