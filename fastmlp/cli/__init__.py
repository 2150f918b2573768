"""The `fastmlp` command: train, predict, evaluate, export, info, download, bench.

Exit status: 0 success; 1 the work failed (a file that cannot be read or written, NaN loss,
no GPU, a failed download); 2 a usage error (bad option or value), found before any work;
130 Ctrl-C (`train` then never replaces an existing output: see cli/train.py).
Errors are one line on stderr, never a traceback.
"""
import os
import sys
import warnings

from .common import Failure, StoppedAtOnce, UsageError
from .parser import DEFAULTS, build_parser, join_dash_values, parse_layers

__all__ = ["main", "build_parser", "parse_layers", "DEFAULTS"]


def _run(args):
    if args.command == "train":
        from .train import train
        return train(args)
    from .commands import COMMANDS
    return COMMANDS[args.command](args)


def main(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(join_dash_values(argv, parser))
    if args.command is None:
        parser.print_help()
        return 2
    status = 1
    try:
        with warnings.catch_warnings():
            # The CLI matches a table's columns to the model's names itself (common.by_name)
            # and hands the model plain arrays, which MLP would warn about.
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            return _run(args)
    except BrokenPipeError:
        # The reader went away (`fastmlp predict ... | head`): stop quietly, and point stdout
        # at /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (UsageError, ValueError, TypeError) as exc:
        # ValueError/TypeError come from the library's checks of option values (an lr out of
        # range, a loss that does not fit the output), which run before any training.
        message, status = exc, 2
    except (Failure, OSError, FloatingPointError, RuntimeError, ImportError) as exc:
        message = exc
    except MemoryError as exc:
        message = f"out of memory: {exc or 'MemoryError'}; try a smaller input or model"
    except KeyboardInterrupt:
        message, status = "interrupted", 130
    except StoppedAtOnce:
        message, status = "interrupted twice: stopped at once, writing nothing more", 130
    text = " ".join(str(message).split()) or type(message).__name__
    print(f"fastmlp {args.command}: error: {text}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
