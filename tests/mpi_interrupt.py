"""Run by tests/test_mpi_interrupt.py as `mpiexec -n 2 python -m tests.mpi_interrupt OUTDIR
ARGV...`: each rank runs `fastmlp ARGV...` (cli.main) and writes what it ended with to
OUTDIR/rank<r>.json: its exit status, the epochs its fit trained, whether the fit was
interrupted, and a digest of its final weights. OUTDIR/ready<r> says the rank has imported
what the command needs, so the test's Ctrl-C lands in the command, not in Python's startup.

A press that lands outside `main` (in this harness, before the command or after it returned,
say while writing rank<r>.json) is the harness's, not the command's: it is ignored, where
Python's default handler would raise KeyboardInterrupt here and lose the record.
"""
import hashlib
import json
import os
import signal
import sys

import fastmlp.cli.train  # noqa: F401  (imported before ready: see the docstring)
from fastmlp.cli import main
from fastmlp.cpu import mpi  # noqa: F401
from fastmlp.model import MLP


def run(outdir, argv):
    rank = int(os.environ.get("PMI_RANK", "0"))
    record = {"epochs": None, "interrupted": None, "weights": None}
    fit = MLP.fit

    def recording_fit(model, *args, **kwargs):
        history = fit(model, *args, **kwargs)
        digest = hashlib.sha256()
        for W, b in model.get_weights():
            digest.update(W.tobytes() + b.tobytes())
        record.update(epochs=int(history.epochs), interrupted=bool(history.interrupted),
                      weights=digest.hexdigest())
        return history

    MLP.fit = recording_fit

    def press(signum, frame):
        # The frame the handler interrupts tells where the press landed, exactly: a flag
        # set after main returns would leave a few bytecodes where it is still wrong.
        while frame is not None:
            if frame.f_code is main.__code__:
                raise KeyboardInterrupt  # in the command, as Python's default handler does
            frame = frame.f_back

    signal.signal(signal.SIGINT, press)
    open(os.path.join(outdir, f"ready{rank}"), "w").close()
    status = main(argv)
    with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
        json.dump({"status": status, **record}, f)
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
